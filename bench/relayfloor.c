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
 *
 * The child blocks in read(2) on its socket and writes each id back.
 *
 * Build: cc -O2 -o relayfloor-c bench/relayfloor.c
 * Run as root: relayfloor-c loop|block DIR   (prints "ready"; runs until killed)
 * bench/relayfloor.sh runs it beside fanref's responder, the Go relayfloor and the daemon.
 */
#define _GNU_SOURCE
#include <sys/fanotify.h>
#include <sys/socket.h>
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

int main(int argc, char **argv) {
	if (argc != 3 || (strcmp(argv[1], "loop") && strcmp(argv[1], "block"))) {
		fprintf(stderr, "usage: relayfloor-c loop|block DIR\n");
		return 2;
	}
	int block = !strcmp(argv[1], "block");
	int kfd = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | (block ? 0 : FAN_NONBLOCK),
				O_RDONLY | O_LARGEFILE | O_CLOEXEC);
	if (kfd < 0) die("fanotify_init");
	if (fanotify_mark(kfd, FAN_MARK_ADD, FAN_OPEN_PERM | FAN_EVENT_ON_CHILD, AT_FDCWD, argv[2]) < 0)
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
