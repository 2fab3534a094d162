/*
 * relayfloor.c: bench/relayfloor in C, the floor of any out-of-process permission relay with
 * no language runtime in the way: it marks DIR's children for FAN_OPEN_PERM, sends each
 * event's 4-byte id to a child process over a socketpair, and writes the child's answer (the
 * id sent back: allow) to the kernel. MODE says how the relay waits:
 *
 *   loop   one thread polls the kernel descriptor and the socket (an event loop, the
 *          daemon's shape): a poll, then a read, per wait
 *   block  one thread sends an id and blocks reading its answer before it reads the kernel
 *          again (not a daemon's option: one slow client would stall every other)
 *   loop2  two reader threads, each waiting in its own epoll on the kernel descriptor and the
 *          one socket to the child (EPOLLEXCLUSIVE: one thread is woken per readiness), each
 *          reading kernel events and answers: the floor of a daemon with several kernel
 *          readers (issue 12), against loop's one
 *
 * The child blocks in read(2) on its socket and writes each id back.
 *
 * Build: cc -O2 -pthread -o relayfloor-c bench/relayfloor.c
 * Run as root: relayfloor-c loop|block|loop2 DIR [mount]   (prints "ready"; runs until killed)
 * With "mount", it marks DIR's whole mount (FAN_MARK_MOUNT) instead of DIR's children, as
 * fanref's responder, fapolicyd and `guard --mount` do (bench/fapolicyd.sh).
 * bench/relayfloor.sh runs it beside fanref's responder, the Go relayfloor and the daemon.
 */
#define _GNU_SOURCE
#include <sys/epoll.h>
#include <sys/fanotify.h>
#include <sys/socket.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void die(const char *what) { perror(what); exit(1); }

static void child(int s) {
	int32_t id;
	for (;;) {
		ssize_t n = read(s, &id, sizeof id);
		if (n <= 0) _exit(0); /* the relay is gone */
		if (write(s, &id, n) != n) _exit(0);
	}
}

/* answer reads one id from the socket and allows that event; 0 on EAGAIN. */
static int answer(int kfd, int s) {
	int32_t id;
	ssize_t n = read(s, &id, sizeof id);
	if (n < 0 && errno == EAGAIN) return 0;
	if (n != sizeof id) die("read answer");
	struct fanotify_response r = { .fd = id, .response = FAN_ALLOW };
	if (write(kfd, &r, sizeof r) != sizeof r) die("write response");
	close(id);
	return 1;
}

/* forward sends the id of each permission event of a batch (waiting for each answer with block). */
static void forward(int kfd, int s, char *buf, ssize_t len, int block) {
	struct fanotify_event_metadata *m = (void *)buf;
	for (; FAN_EVENT_OK(m, len); m = FAN_EVENT_NEXT(m, len)) {
		if (m->fd < 0) continue;
		if (!(m->mask & FAN_ALL_PERM_EVENTS)) { close(m->fd); continue; }
		int32_t id = m->fd;
		if (write(s, &id, sizeof id) != sizeof id) die("send id");
		if (block) answer(kfd, s);
	}
}

static int g_kfd, g_s;

/* reader is one of loop2's threads: it waits in its own epoll, woken alone (EPOLLEXCLUSIVE)
 * when the kernel descriptor or the socket is readable, and reads what is there. */
static void *reader(void *arg) {
	(void)arg;
	static __thread char buf[1 << 16] __attribute__((aligned(8)));
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) die("epoll_create1");
	struct epoll_event e = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = g_kfd };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, g_kfd, &e) < 0) die("epoll_ctl kernel");
	e.data.fd = g_s;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, g_s, &e) < 0) die("epoll_ctl socket");
	for (;;) {
		struct epoll_event got[2];
		int n = epoll_wait(ep, got, 2, -1);
		if (n < 0) {
			if (errno == EINTR) continue;
			die("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			if (got[i].data.fd == g_kfd) {
				ssize_t len = read(g_kfd, buf, sizeof buf);
				if (len > 0) forward(g_kfd, g_s, buf, len, 0);
				else if (len < 0 && errno != EAGAIN) die("read events");
			} else {
				answer(g_kfd, g_s); /* one per readiness, as loop; EAGAIN if the other took it */
			}
		}
	}
	return NULL;
}

int main(int argc, char **argv) {
	if ((argc != 3 && !(argc == 4 && !strcmp(argv[3], "mount"))) ||
	    (strcmp(argv[1], "loop") && strcmp(argv[1], "block") && strcmp(argv[1], "loop2"))) {
		fprintf(stderr, "usage: relayfloor-c loop|block|loop2 DIR [mount]\n");
		return 2;
	}
	int block = !strcmp(argv[1], "block");
	/* A background job of a non-interactive shell starts with SIGINT ignored, and
	 * bench/fapolicyd.sh stops its listeners with SIGINT (as fapolicyd wants). */
	signal(SIGINT, SIG_DFL);
	int kfd = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | (block ? 0 : FAN_NONBLOCK),
				O_RDONLY | O_LARGEFILE | O_CLOEXEC);
	if (kfd < 0) die("fanotify_init");
	int mount = argc == 4;
	if (fanotify_mark(kfd, FAN_MARK_ADD | (mount ? FAN_MARK_MOUNT : 0),
			  FAN_OPEN_PERM | (mount ? 0 : FAN_EVENT_ON_CHILD), AT_FDCWD, argv[2]) < 0)
		die("fanotify_mark");
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) die("socketpair");
	pid_t pid = fork();
	if (pid < 0) die("fork");
	if (pid == 0) {
		close(kfd);
		close(sv[0]);
		child(sv[1]);
	}
	close(sv[1]);
	int s = sv[0];
	printf("ready\n");
	fflush(stdout);
	static char buf[1 << 16] __attribute__((aligned(8)));
	if (block) {
		for (;;) {
			ssize_t len = read(kfd, buf, sizeof buf);
			if (len <= 0) die("read events");
			forward(kfd, s, buf, len, 1);
		}
	}
	if (fcntl(s, F_SETFL, O_NONBLOCK) < 0) die("fcntl");
	if (!strcmp(argv[1], "loop2")) {
		g_kfd = kfd, g_s = s;
		pthread_t t;
		if (pthread_create(&t, NULL, reader, NULL)) die("pthread_create");
		reader(NULL);
	}
	struct pollfd p[2] = { { .fd = kfd, .events = POLLIN }, { .fd = s, .events = POLLIN } };
	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR) continue;
			die("poll");
		}
		if (p[0].revents & POLLIN) {
			ssize_t len = read(kfd, buf, sizeof buf);
			if (len > 0) forward(kfd, s, buf, len, 0);
			else if (len < 0 && errno != EAGAIN) die("read events");
		}
		/* One answer per readiness, as the daemon's loop reads: poll is level-triggered,
		 * so what is left wakes the next one, and no read finds the socket empty. */
		if (p[1].revents & (POLLIN | POLLHUP)) answer(kfd, s);
	}
}
