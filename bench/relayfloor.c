/*
 * relayfloor.c: bench/relayfloor in C, the floor of any out-of-process permission relay with
 * no language runtime in the way: it marks DIR's children for FAN_OPEN_PERM, passes each
 * event's 4-byte id to a child process, and writes the child's answer (the id sent back:
 * allow) to the kernel. The child never sees the kernel descriptor: the relay answers only
 * ids it read from the kernel itself (a client holding the group's descriptor could answer
 * other processes' events).
 *
 * MODE[-TRANSPORT] says how the relay waits, and over what it talks to the child.
 * Modes:
 *   loop   one thread polls the kernel descriptor and the answer channel (an event loop, the
 *          daemon's shape): a poll, then a read, per wait
 *   block  one thread sends an id and waits for its answer before it reads the kernel again
 *          (not a daemon's option: one slow client would stall every other)
 *   loop2  two loop threads, each waiting in its own epoll on the kernel descriptor and the
 *          answer channel (EPOLLEXCLUSIVE: one thread is woken per readiness): the floor of a
 *          daemon with several kernel readers (issue 12), against loop's one (sockets only)
 *   split  two threads and no poll: one blocks in the kernel descriptor's read(2) and sends
 *          the ids, the other blocks on the answer channel and answers the kernel
 * Transports (default seq):
 *   seq    an AF_UNIX SOCK_SEQPACKET socketpair (a blocked reader is woken only for data)
 *   stream an AF_UNIX SOCK_STREAM socketpair, the daemon's socket type (a reader blocked in
 *          recv is also woken when its peer reads what it sent: room to write)
 *   pipe   two pipes, one per direction
 *   futex  two single-producer rings in shared memory; a reader with nothing to read sleeps
 *          in FUTEX_WAIT and a writer calls FUTEX_WAKE only when the reader said it sleeps
 *          (no spinning). A loop cannot poll a futex, so with loop the relay's side of the
 *          answer ring is signalled through an eventfd it polls beside the kernel descriptor.
 *   model  the daemon's system calls with nothing else: stream (the daemon's socket type), a
 *          statx of each event's descriptor in the relay (the daemon's translation), and a
 *          child that polls its socket before each read (the client's wait, which a stream
 *          socket's room-to-write wake-ups would otherwise end: proto rawSock.recvmsg)
 *
 * Build: cc -O2 -pthread -o relayfloor-c bench/relayfloor.c
 * Run as root: relayfloor-c MODE[-TRANSPORT] DIR [mount]   (prints "ready"; runs until killed)
 * With "mount", it marks DIR's whole mount (FAN_MARK_MOUNT) instead of DIR's children, as
 * fanref's responder, fapolicyd and `guard --mount` do (bench/fapolicyd.sh).
 * bench/relayfloor.sh runs it beside fanref's responder, the Go relayfloor and the daemon;
 * bench/relaycount.sh counts its system calls and context switches per open.
 */
#define _GNU_SOURCE
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/futex.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void die(const char *what) { perror(what); exit(1); }

enum transport { T_SEQ, T_STREAM, T_PIPE, T_FUTEX, T_MODEL };
static enum transport tr;

/* A single-producer, single-consumer ring of ids in shared memory. The consumer sleeps on
 * head with FUTEX_WAIT after it set sleeping; the producer publishes head, then reads
 * sleeping (both sides fence between their store and their load: one of them sees the
 * other's) and wakes only a sleeper. Not FUTEX_PRIVATE: the two sides are two processes. */
#define RING 4096
struct ring {
	_Atomic uint32_t head;     /* written by the producer */
	_Atomic uint32_t sleeping; /* written by the consumer */
	uint32_t tail;             /* the consumer's */
	int32_t slot[RING];
	int efd;                   /* >= 0: wake the consumer through this eventfd (it polls) */
};
static struct ring *req, *ans; /* relay -> child, child -> relay */

static long futex(_Atomic uint32_t *w, int op, uint32_t v) { return syscall(SYS_futex, w, op, v, NULL, NULL, 0); }

static void ring_put(struct ring *r, int32_t id) {
	uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
	r->slot[h % RING] = id;
	atomic_store_explicit(&r->head, h + 1, memory_order_release);
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&r->sleeping, memory_order_relaxed)) {
		if (r->efd >= 0) {
			uint64_t one = 1;
			if (write(r->efd, &one, sizeof one) != sizeof one) die("write eventfd");
		} else {
			futex(&r->head, FUTEX_WAKE, 1);
		}
	}
}

/* ring_take returns the next id, or -1 if the ring is empty. */
static int32_t ring_take(struct ring *r) {
	if (atomic_load_explicit(&r->head, memory_order_acquire) == r->tail) return -1;
	return r->slot[r->tail++ % RING];
}

/* ring_get waits (FUTEX_WAIT, no spinning) for the next id. */
static int32_t ring_get(struct ring *r) {
	for (;;) {
		int32_t id = ring_take(r);
		if (id >= 0) return id;
		atomic_store_explicit(&r->sleeping, 1, memory_order_relaxed);
		atomic_thread_fence(memory_order_seq_cst);
		uint32_t h = atomic_load_explicit(&r->head, memory_order_acquire);
		if (h == r->tail) futex(&r->head, FUTEX_WAIT, h); /* EAGAIN if head moved meanwhile */
		atomic_store_explicit(&r->sleeping, 0, memory_order_relaxed);
	}
}

/* The relay's and the child's ends: where each writes and reads (one socket for both
 * directions, or a pipe each way). */
static int relay_w, relay_r, child_w, child_r;

static void child(void) {
	int32_t id;
	/* A child sleeping in FUTEX_WAIT would not see the relay go (a socket's or a pipe's
	 * would read end-of-file): it goes with it. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) die("prctl");
	for (;;) {
		if (tr == T_FUTEX) {
			ring_put(ans, ring_get(req));
			continue;
		}
		if (tr == T_MODEL) {
			struct pollfd p = { .fd = child_r, .events = POLLIN };
			if (poll(&p, 1, -1) < 0 && errno != EINTR) _exit(0);
		}
		ssize_t n = read(child_r, &id, sizeof id);
		if (n <= 0) _exit(0); /* the relay is gone */
		if (write(child_w, &id, n) != n) _exit(0);
	}
}

static int kfd;

static void allow(int32_t id) {
	struct fanotify_response r = { .fd = id, .response = FAN_ALLOW };
	if (write(kfd, &r, sizeof r) != sizeof r) die("write response");
	close(id);
}

/* answer reads one answer and allows that event; 0 if there was none (EAGAIN). With the
 * futex transport it takes every answer in the ring. Blocks if the channel blocks. */
static int answer(void) {
	int32_t id;
	if (tr == T_FUTEX) {
		if (ans->efd >= 0) { /* loop: the relay was signalled through the eventfd it polls */
			uint64_t v;
			if (read(ans->efd, &v, sizeof v) < 0 && errno != EAGAIN) die("read eventfd");
			int k = 0;
			while ((id = ring_take(ans)) >= 0) allow(id), k++;
			return k;
		}
		allow(ring_get(ans));
		return 1;
	}
	ssize_t n = read(relay_r, &id, sizeof id);
	if (n < 0 && errno == EAGAIN) return 0;
	if (n != sizeof id) die("read answer");
	allow(id);
	return 1;
}

static void send_id(int32_t id) {
	if (tr == T_FUTEX) ring_put(req, id);
	else if (write(relay_w, &id, sizeof id) != sizeof id) die("send id");
}

/* forward sends the id of each permission event of a batch (waiting for each answer with block). */
static void forward(char *buf, ssize_t len, int block) {
	struct fanotify_event_metadata *m = (void *)buf;
	for (; FAN_EVENT_OK(m, len); m = FAN_EVENT_NEXT(m, len)) {
		if (m->fd < 0) continue;
		if (!(m->mask & FAN_ALL_PERM_EVENTS)) { close(m->fd); continue; }
		if (tr == T_MODEL) {
			struct statx st;
			if (statx(m->fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_INO | STATX_MNT_ID, &st) < 0)
				die("statx");
		}
		send_id(m->fd);
		if (block) answer();
	}
}

/* reader is one of loop2's threads: it waits in its own epoll, woken alone (EPOLLEXCLUSIVE)
 * when the kernel descriptor or the socket is readable, and reads what is there. */
static void *reader(void *arg) {
	(void)arg;
	static __thread char buf[1 << 16] __attribute__((aligned(8)));
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) die("epoll_create1");
	struct epoll_event e = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = kfd };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, kfd, &e) < 0) die("epoll_ctl kernel");
	e.data.fd = relay_r;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, relay_r, &e) < 0) die("epoll_ctl socket");
	for (;;) {
		struct epoll_event got[2];
		int n = epoll_wait(ep, got, 2, -1);
		if (n < 0) {
			if (errno == EINTR) continue;
			die("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			if (got[i].data.fd == kfd) {
				ssize_t len = read(kfd, buf, sizeof buf);
				if (len > 0) forward(buf, len, 0);
				else if (len < 0 && errno != EAGAIN) die("read events");
			} else {
				answer(); /* one per readiness, as loop; EAGAIN if the other took it */
			}
		}
	}
	return NULL;
}

/* answerer is split's second thread: it blocks on the answer channel and answers. */
static void *answerer(void *arg) {
	(void)arg;
	for (;;) answer();
	return NULL;
}

int main(int argc, char **argv) {
	char mode[16] = "";
	const char *t = argc > 1 ? strchr(argv[1], '-') : NULL;
	if (argc > 1) snprintf(mode, sizeof mode, "%.*s", t ? (int)(t - argv[1]) : (int)strlen(argv[1]), argv[1]);
	int ok = !strcmp(mode, "loop") || !strcmp(mode, "block") || !strcmp(mode, "loop2") || !strcmp(mode, "split");
	if (!t || !strcmp(t, "-seq")) tr = T_SEQ;
	else if (!strcmp(t, "-stream")) tr = T_STREAM;
	else if (!strcmp(t, "-pipe")) tr = T_PIPE;
	else if (!strcmp(t, "-futex")) tr = T_FUTEX;
	else if (!strcmp(t, "-model")) tr = T_MODEL;
	else ok = 0;
	if (!strcmp(mode, "loop2") && tr != T_SEQ && tr != T_STREAM) ok = 0;
	if ((argc != 3 && !(argc == 4 && !strcmp(argv[3], "mount"))) || !ok) {
		fprintf(stderr, "usage: relayfloor-c loop|block|split[-seq|-stream|-pipe|-futex|-model] DIR [mount]\n"
				"       relayfloor-c loop2[-seq|-stream] DIR [mount]\n");
		return 2;
	}
	int block = !strcmp(mode, "block"), split = !strcmp(mode, "split");
	/* A background job of a non-interactive shell starts with SIGINT ignored, and
	 * bench/fapolicyd.sh stops its listeners with SIGINT (as fapolicyd wants). */
	signal(SIGINT, SIG_DFL);
	/* Only loop and loop2 poll the kernel descriptor; block and split block in its read. */
	kfd = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | (block || split ? 0 : FAN_NONBLOCK),
			    O_RDONLY | O_LARGEFILE | O_CLOEXEC);
	if (kfd < 0) die("fanotify_init");
	int mount = argc == 4;
	if (fanotify_mark(kfd, FAN_MARK_ADD | (mount ? FAN_MARK_MOUNT : 0),
			  FAN_OPEN_PERM | (mount ? 0 : FAN_EVENT_ON_CHILD), AT_FDCWD, argv[2]) < 0)
		die("fanotify_mark");
	int sv[2], pv[2];
	switch (tr) {
	case T_SEQ:
	case T_STREAM:
	case T_MODEL:
		if (socketpair(AF_UNIX, (tr == T_SEQ ? SOCK_SEQPACKET : SOCK_STREAM) | SOCK_CLOEXEC, 0, sv) < 0)
			die("socketpair");
		relay_w = relay_r = sv[0], child_w = child_r = sv[1];
		break;
	case T_PIPE:
		if (pipe2(sv, O_CLOEXEC) < 0 || pipe2(pv, O_CLOEXEC) < 0) die("pipe2");
		relay_w = sv[1], child_r = sv[0], child_w = pv[1], relay_r = pv[0];
		break;
	case T_FUTEX:
		req = mmap(NULL, 2 * sizeof *req, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (req == MAP_FAILED) die("mmap");
		ans = req + 1;
		req->efd = -1;
		ans->efd = -1;
		if (!strcmp(mode, "loop") && (ans->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) die("eventfd");
		relay_r = ans->efd;
		break;
	}
	pid_t pid = fork();
	if (pid < 0) die("fork");
	if (pid == 0) {
		close(kfd);
		if (tr != T_FUTEX) {
			close(relay_w);
			if (relay_r != relay_w) close(relay_r);
		}
		child();
	}
	if (tr != T_FUTEX) {
		close(child_w);
		if (child_r != child_w) close(child_r);
	}
	printf("ready\n");
	fflush(stdout);
	static char buf[1 << 16] __attribute__((aligned(8)));
	if (block || split) {
		pthread_t th;
		if (split && pthread_create(&th, NULL, answerer, NULL)) die("pthread_create");
		for (;;) {
			ssize_t len = read(kfd, buf, sizeof buf);
			if (len <= 0) die("read events");
			forward(buf, len, block);
		}
	}
	if (tr != T_FUTEX && fcntl(relay_r, F_SETFL, O_NONBLOCK) < 0) die("fcntl");
	if (!strcmp(mode, "loop2")) {
		pthread_t th;
		if (pthread_create(&th, NULL, reader, NULL)) die("pthread_create");
		reader(NULL);
	}
	struct pollfd p[2] = { { .fd = kfd, .events = POLLIN }, { .fd = relay_r, .events = POLLIN } };
	for (;;) {
		if (tr == T_FUTEX) { /* say we sleep, then look once more: the child wakes only a sleeper */
			atomic_store_explicit(&ans->sleeping, 1, memory_order_relaxed);
			atomic_thread_fence(memory_order_seq_cst);
			int32_t id;
			if (atomic_load_explicit(&ans->head, memory_order_acquire) != ans->tail) {
				atomic_store_explicit(&ans->sleeping, 0, memory_order_relaxed);
				while ((id = ring_take(ans)) >= 0) allow(id);
				continue;
			}
		}
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR) continue;
			die("poll");
		}
		if (tr == T_FUTEX) atomic_store_explicit(&ans->sleeping, 0, memory_order_relaxed);
		if (p[0].revents & POLLIN) {
			ssize_t len = read(kfd, buf, sizeof buf);
			if (len > 0) forward(buf, len, 0);
			else if (len < 0 && errno != EAGAIN) die("read events");
		}
		/* One answer per readiness, as the daemon's loop reads: poll is level-triggered,
		 * so what is left wakes the next one, and no read finds the socket empty. */
		if (p[1].revents & (POLLIN | POLLHUP)) answer();
	}
}
