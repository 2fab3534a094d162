/*
 * guardfloor: fanref's allow-all responder (bench/fanref.c) reshaped, one step at a time, into
 * what `fsnotifyd guard DIR` asks of the kernel, to measure in C, side by side with fanref,
 * the floor under the embedded guard's per-open time (bench/guardfloor.sh).
 *
 *   guardfloor respond DIR [fs] [pre] [statx] [thread]
 *
 *   fs     a filesystem mark on DIR's filesystem (FAN_MARK_FILESYSTEM, FAN_OPEN_PERM) instead
 *          of fanref's inode mark on DIR with FAN_EVENT_ON_CHILD: `guard DIR` places one (a
 *          subtree is a filesystem mark filtered in user space; the kernel has no subtree mark)
 *   pre    the group's class is FAN_CLASS_PRE_CONTENT, as the guard's FD group is (its class
 *          is fixed at creation, and pre-access rules need it)
 *   statx  one statx(2) of each event's descriptor (AT_EMPTY_PATH, STATX_BASIC_STATS |
 *          STATX_MNT_ID, the guard's call: internal/sys Fstat) before the answer: the object's
 *          identity, which a permission event does not carry (fanotify refuses FID reporting
 *          with permission classes through Linux 6.18, EINVAL), and which a subtree mark needs
 *          to place the object (the ancestry cache is keyed by inode) and the engine to find
 *          the object's marks
 *   thread one more thread, idle in pause(2): the process's descriptor table is then shared,
 *          as in any Go program (the runtime always starts threads), so that each call on a
 *          descriptor (read, write, statx, close) takes and drops a reference to its file
 *          (fdget's slow path) where a single-threaded process borrows it
 *
 * Each event: read, [statx], write the answer, close: nothing else. Prints "ready" once its
 * mark is in place; runs until SIGTERM or SIGINT. Build: cc -O2 -pthread -o guardfloor guardfloor.c
 */
#define _GNU_SOURCE
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef STATX_MNT_ID_UNIQUE
#define STATX_MNT_ID_UNIQUE 0x4000U
#endif

static volatile sig_atomic_t stop;
static void on_term(int s) { (void)s; stop = 1; }
static void *idle(void *p) { (void)p; for (;;) pause(); return NULL; }

int main(int argc, char **argv) {
	if (argc < 3 || strcmp(argv[1], "respond")) {
		fprintf(stderr, "usage: guardfloor respond DIR [fs] [pre] [statx]\n");
		return 2;
	}
	int fs = 0, pre = 0, stx = 0, thr = 0;
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "fs")) fs = 1;
		else if (!strcmp(argv[i], "pre")) pre = 1;
		else if (!strcmp(argv[i], "statx")) stx = 1;
		else if (!strcmp(argv[i], "thread")) thr = 1;
		else { fprintf(stderr, "guardfloor: unknown option %s (fs, pre, statx or thread)\n", argv[i]); return 2; }
	}
	int fd = fanotify_init((pre ? FAN_CLASS_PRE_CONTENT : FAN_CLASS_CONTENT) | FAN_CLOEXEC,
			       O_RDONLY | O_LARGEFILE | O_CLOEXEC);
	if (fd < 0) { perror("fanotify_init"); return 1; }
	uint64_t mask = FAN_OPEN_PERM;
	unsigned int flags = FAN_MARK_ADD;
	if (fs) flags |= FAN_MARK_FILESYSTEM;
	else mask |= FAN_EVENT_ON_CHILD;
	if (fanotify_mark(fd, flags, mask, AT_FDCWD, argv[2]) < 0) { perror("fanotify_mark"); return 1; }
	if (thr) { /* created with every signal blocked: SIGTERM must reach the reading thread */
		pthread_t th;
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		if (pthread_create(&th, NULL, idle, NULL) != 0) { fprintf(stderr, "guardfloor: pthread_create failed\n"); return 1; }
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	struct sigaction sa = { .sa_handler = on_term };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	printf("ready\n");
	fflush(stdout);
	static char buf[1 << 16] __attribute__((aligned(8)));
	long events = 0;
	unsigned long long sink = 0;
	while (!stop) {
		ssize_t len = read(fd, buf, sizeof buf);
		if (len <= 0) break;
		struct fanotify_event_metadata *m = (void *)buf;
		for (; FAN_EVENT_OK(m, len); m = FAN_EVENT_NEXT(m, len)) {
			if (stx && m->fd >= 0) {
				struct statx st;
				if (statx(m->fd, "", AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT,
					  STATX_BASIC_STATS | STATX_MNT_ID_UNIQUE, &st) == 0)
					sink += st.stx_ino ^ st.stx_mnt_id;
			}
			if (m->mask & FAN_ALL_PERM_EVENTS) {
				struct fanotify_response r = { .fd = m->fd, .response = FAN_ALLOW };
				if (write(fd, &r, sizeof r) != sizeof r) perror("write response");
			}
			if (m->fd >= 0) close(m->fd);
			events++;
		}
	}
	printf("events %ld (%llx)\n", events, sink & 1);
	return 0;
}
