/*
 * (A copy of the team's reference, shared/bench/fanref.c, kept here so that the benchmarks run
 * from a fresh clone.)
 * fanref: reference points for benchmarking a fanotify-based system.
 *
 *   fanref respond DIR [mount]   allow-all permission responder (FAN_OPEN_PERM on DIR's
 *                                children, or on DIR's whole mount with "mount"); the
 *                                lower bound for any userspace permission listener.
 *   fanref notify DIR [mount]    notification reader (open, close, modify, on DIR's
 *                                children or mount); counts events, prints on SIGTERM.
 *   fanref load FILE N [THREADS] open()+close() FILE N times per thread; prints
 *                                ops/s and per-open latency p50/p99/max in microseconds.
 *
 * Build: cc -O2 -pthread -o fanref fanref.c
 * Run as root. Measure side by side in one run: load alone, load with this responder,
 * load with the system under test, and quote ratios.
 */
#define _GNU_SOURCE
#include <sys/fanotify.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_term(int s) { (void)s; stop = 1; }

static double now_us(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int listen_loop(const char *dir, int perm, int mount) {
	int fd = fanotify_init((perm ? FAN_CLASS_CONTENT : FAN_CLASS_NOTIF) | FAN_CLOEXEC,
			       O_RDONLY | O_LARGEFILE | O_CLOEXEC);
	if (fd < 0) { perror("fanotify_init"); return 1; }
	uint64_t mask = perm ? FAN_OPEN_PERM : (FAN_OPEN | FAN_CLOSE | FAN_MODIFY);
	unsigned int flags = FAN_MARK_ADD | (mount ? FAN_MARK_MOUNT : 0);
	if (!mount) mask |= FAN_EVENT_ON_CHILD;
	if (fanotify_mark(fd, flags, mask, AT_FDCWD, dir) < 0) { perror("fanotify_mark"); return 1; }
	struct sigaction sa = { .sa_handler = on_term };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	printf("ready\n");
	fflush(stdout);
	static char buf[1 << 16] __attribute__((aligned(8)));
	long events = 0;
	while (!stop) {
		ssize_t len = read(fd, buf, sizeof buf);
		if (len <= 0) break;
		struct fanotify_event_metadata *m = (void *)buf;
		for (; FAN_EVENT_OK(m, len); m = FAN_EVENT_NEXT(m, len)) {
			if (m->mask & FAN_ALL_PERM_EVENTS) {
				struct fanotify_response r = { .fd = m->fd, .response = FAN_ALLOW };
				if (write(fd, &r, sizeof r) != sizeof r) perror("write response");
			}
			if (m->fd >= 0) close(m->fd);
			events++;
		}
	}
	printf("events %ld\n", events);
	return 0;
}

struct load { const char *file; long n; double *lat; };

static void *load_thread(void *p) {
	struct load *l = p;
	for (long i = 0; i < l->n; i++) {
		double t0 = now_us();
		int fd = open(l->file, O_RDONLY);
		if (fd < 0) { perror("open"); exit(1); }
		close(fd);
		l->lat[i] = now_us() - t0;
	}
	return NULL;
}

static int cmp(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int load(const char *file, long n, int threads) {
	pthread_t th[64];
	struct load l[64];
	if (threads < 1 || threads > 64) threads = 1;
	double *all = calloc((size_t)n * threads, sizeof *all);
	double t0 = now_us();
	for (int i = 0; i < threads; i++) {
		l[i] = (struct load){ file, n, all + (size_t)i * n };
		pthread_create(&th[i], NULL, load_thread, &l[i]);
	}
	for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
	double secs = (now_us() - t0) / 1e6;
	long total = n * threads;
	qsort(all, total, sizeof *all, cmp);
	printf("opens %ld threads %d ops_per_s %.0f p50_us %.2f p99_us %.2f max_us %.2f\n", total, threads,
	       total / secs, all[total / 2], all[total * 99 / 100], all[total - 1]);
	return 0;
}

int main(int argc, char **argv) {
	if (argc >= 3 && !strcmp(argv[1], "respond"))
		return listen_loop(argv[2], 1, argc > 3 && !strcmp(argv[3], "mount"));
	if (argc >= 3 && !strcmp(argv[1], "notify"))
		return listen_loop(argv[2], 0, argc > 3 && !strcmp(argv[3], "mount"));
	if (argc >= 4 && !strcmp(argv[1], "load"))
		return load(argv[2], atol(argv[3]), argc > 4 ? atoi(argv[4]) : 1);
	fprintf(stderr, "usage: fanref respond|notify DIR [mount] | fanref load FILE N [THREADS]\n");
	return 2;
}
