// routes: one way of reading or writing a file's content, as the calling user.
// usage: routes ROUTE FILE [AUX]
// Prints "ok N DATA" (N bytes obtained or written, DATA the first bytes read, printable)
// or "err ERRNO STEP" (the step that failed). Exit 0 either way; 2 on bad usage.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <linux/fs.h>
#include <linux/io_uring.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define BUFSZ 4096
static char *buf;

static int fail(const char *step) {
	printf("err %d %s\n", errno, step);
	return 0;
}

static int got(const char *data, long n) {
	printf("ok %ld ", n);
	for (long i = 0; i < n && i < 32; i++)
		putchar(data[i] >= 32 && data[i] < 127 ? data[i] : '.');
	putchar('\n');
	return 0;
}

static int wrote(long n) {
	printf("ok %ld\n", n);
	return 0;
}

// drain reads what a pipe holds.
static int drain(int p) {
	long n = read(p, buf, BUFSZ);
	if (n < 0)
		return fail("read pipe");
	return got(buf, n);
}

// readback reads an auxiliary file a route copied into.
static int readback(const char *aux, long n) {
	int fd = open(aux, O_RDONLY);
	if (fd < 0)
		return fail("open aux");
	long r = pread(fd, buf, BUFSZ, 0);
	if (r < 0)
		return fail("read aux");
	(void)n;
	return got(buf, r);
}

/* io_uring, by its raw system calls (no liburing). */
#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#define __NR_io_uring_enter 426
#define __NR_io_uring_register 427
#endif

struct ring {
	int fd;
	unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
	unsigned flags;
};

static int ring_init(struct ring *r, unsigned flags) {
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = flags;
	if (flags & IORING_SETUP_SQPOLL)
		p.sq_thread_idle = 1000;
	r->fd = syscall(__NR_io_uring_setup, 4, &p);
	if (r->fd < 0)
		return -1;
	r->flags = flags;
	size_t sqsz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	size_t cqsz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	char *sq = mmap(0, sqsz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
	char *cq = mmap(0, cqsz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_CQ_RING);
	r->sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || r->sqes == MAP_FAILED)
		return -1;
	r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
	r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
	r->sq_array = (unsigned *)(sq + p.sq_off.array);
	r->cq_head = (unsigned *)(cq + p.cq_off.head);
	r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
	r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	return 0;
}

static struct io_uring_sqe *ring_sqe(struct ring *r) {
	unsigned tail = *r->sq_tail, i = tail & *r->sq_mask;
	struct io_uring_sqe *sqe = &r->sqes[i];
	memset(sqe, 0, sizeof *sqe);
	r->sq_array[i] = i;
	return sqe;
}

// ring_run submits the one prepared sqe and returns its result (or -errno).
static long ring_run(struct ring *r) {
	__atomic_store_n(r->sq_tail, *r->sq_tail + 1, __ATOMIC_RELEASE);
	unsigned enter = IORING_ENTER_GETEVENTS, submit = 1;
	if (r->flags & IORING_SETUP_SQPOLL) {
		enter |= IORING_ENTER_SQ_WAKEUP;
		submit = 0;
	}
	for (;;) {
		long ret = syscall(__NR_io_uring_enter, r->fd, submit, 1, enter, NULL, 0);
		if (ret < 0 && errno != EINTR)
			return -errno;
		submit = 0;
		unsigned head = *r->cq_head;
		if (head != __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE)) {
			long res = r->cqes[head & *r->cq_mask].res;
			__atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
			return res;
		}
	}
}

static int uring(const char *route, int fd, int pipefd[2], const char *aux) {
	struct ring r;
	unsigned flags = 0;
	if (strstr(route, "sqpoll"))
		flags |= IORING_SETUP_SQPOLL;
	if (ring_init(&r, flags) < 0)
		return fail("io_uring_setup");
	struct io_uring_sqe *sqe = ring_sqe(&r);
	struct iovec iov = {buf, BUFSZ};
	int wrt = strstr(route, "write") != NULL;
	sqe->fd = fd;
	sqe->addr = (uintptr_t)buf;
	sqe->len = BUFSZ;
	if (wrt) {
		memcpy(buf, "PWNED", 5);
		sqe->len = 5;
	}
	if (strstr(route, "async"))
		sqe->flags |= IOSQE_ASYNC;
	if (!strncmp(route, "uring_readv", 11) || !strncmp(route, "uring_writev", 12)) {
		sqe->opcode = wrt ? 2 : 1; /* IORING_OP_WRITEV, READV */
		sqe->addr = (uintptr_t)&iov;
		iov.iov_len = sqe->len;
		sqe->len = 1;
	} else if (!strncmp(route, "uring_read_fixed", 16) || !strncmp(route, "uring_write_fixed", 17)) {
		if (syscall(__NR_io_uring_register, r.fd, IORING_REGISTER_BUFFERS, &iov, 1) < 0)
			return fail("io_uring_register buffers");
		sqe->opcode = wrt ? 5 : 4; /* IORING_OP_WRITE_FIXED, READ_FIXED */
		sqe->buf_index = 0;
	} else if (!strncmp(route, "uring_splice", 12)) {
		sqe->opcode = 30; /* IORING_OP_SPLICE */
		sqe->splice_fd_in = fd;
		sqe->splice_off_in = 0;
		sqe->fd = pipefd[1];
		sqe->off = (uint64_t)-1;
		sqe->addr = 0;
	} else if (!strncmp(route, "uring_fallocate", 15)) {
		sqe->opcode = 17; /* IORING_OP_FALLOCATE: len in addr, mode in len */
		sqe->off = 0;
		sqe->addr = 1 << 20;
		sqe->len = 0;
	} else if (!strncmp(route, "uring_ftruncate", 15)) {
		sqe->opcode = 55; /* IORING_OP_FTRUNCATE (6.9) */
		sqe->off = 0;
		sqe->addr = 0;
		sqe->len = 0;
	} else {
		sqe->opcode = wrt ? 23 : 22; /* IORING_OP_WRITE, READ */
	}
	long res = ring_run(&r);
	if (res < 0) {
		errno = -res;
		return fail(route);
	}
	if (!strncmp(route, "uring_splice", 12))
		return drain(pipefd[0]);
	if (wrt || strstr(route, "fallocate") || strstr(route, "ftruncate"))
		return wrote(res);
	(void)aux;
	return got(buf, res);
}

static int aio(int fd, int wrt) {
	aio_context_t ctx = 0;
	if (syscall(SYS_io_setup, 1, &ctx) < 0)
		return fail("io_setup");
	struct iocb cb;
	memset(&cb, 0, sizeof cb);
	cb.aio_fildes = fd;
	cb.aio_lio_opcode = wrt ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD;
	cb.aio_buf = (uintptr_t)buf;
	cb.aio_nbytes = wrt ? 5 : BUFSZ;
	if (wrt)
		memcpy(buf, "PWNED", 5);
	struct iocb *cbs[1] = {&cb};
	if (syscall(SYS_io_submit, ctx, 1, cbs) != 1)
		return fail("io_submit");
	struct io_event ev;
	if (syscall(SYS_io_getevents, ctx, 1, 1, &ev, NULL) != 1)
		return fail("io_getevents");
	if ((long)ev.res < 0) {
		errno = -(long)ev.res;
		return fail("aio");
	}
	return wrt ? wrote(ev.res) : got(buf, ev.res);
}

int main(int argc, char **argv) {
	if (argc < 3)
		return 2;
	const char *route = argv[1], *file = argv[2], *aux = argc > 3 ? argv[3] : NULL;
	if (posix_memalign((void **)&buf, 4096, BUFSZ))
		return 2;
	memset(buf, 0, BUFSZ);
	setvbuf(stdout, NULL, _IONBF, 0);
	int wr = strstr(route, "write") || strstr(route, "trunc") || strstr(route, "falloc") ||
		    strstr(route, "punch") || strstr(route, "zero") || strstr(route, "_to") || strstr(route, "mmap_shared_rw");
	int oflags = wr ? O_RDWR : O_RDONLY;
	if (strstr(route, "direct"))
		oflags |= O_DIRECT;
	if (!strcmp(route, "open_trunc"))
		oflags |= O_TRUNC;
	if (!strcmp(route, "readloop")) {
		/* AUX times: open, pread, close; prints how many reads got content and each errno's count */
		static long count[256];
		long ok = 0, times = atol(aux);
		for (long i = 0; i < times; i++) {
			int fd = open(file, O_RDONLY);
			if (fd < 0 || pread(fd, buf, BUFSZ, 0) < 0)
				count[errno & 0xff]++;
			else
				ok++;
			if (fd >= 0)
				close(fd);
		}
		printf("loop ok=%ld", ok);
		for (int e = 0; e < 256; e++)
			if (count[e])
				printf(" %d=%ld", e, count[e]);
		printf("\n");
		return 0;
	}
	if (!strcmp(route, "truncate")) {
		if (truncate(file, 0) < 0)
			return fail("truncate");
		return wrote(0);
	}
	int fd;
	if (!strncmp(file, "recv:", 5)) {
		/* the file comes over a unix socket (SCM_RIGHTS) from another process */
		char c, cbuf[CMSG_SPACE(sizeof(int))];
		struct iovec one = {&c, 1};
		struct msghdr mh = {.msg_iov = &one, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
		if (recvmsg(atoi(file + 5), &mh, 0) < 0)
			return fail("recvmsg");
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		if (!cm || cm->cmsg_type != SCM_RIGHTS)
			return errno = EBADMSG, fail("recvmsg");
		memcpy(&fd, CMSG_DATA(cm), sizeof fd);
	} else {
		fd = open(file, oflags);
	}
	if (fd < 0)
		return fail("open");
	if (getenv("ROUTES_GATE")) {
		/* opened: wait for a line on stdin before the access */
		printf("opened\n");
		char line[8];
		if (read(0, line, sizeof line) < 0)
			return fail("gate");
	}
	int p[2];
	if (pipe(p) < 0)
		return fail("pipe");
	long n;
	struct iovec iov = {buf, BUFSZ};

	if (!strcmp(route, "read") || !strcmp(route, "direct_read")) {
		if ((n = read(fd, buf, BUFSZ)) < 0)
			return fail(route);
		return got(buf, n);
	}
	if (!strcmp(route, "pread")) {
		if ((n = pread(fd, buf, BUFSZ, 0)) < 0)
			return fail(route);
		return got(buf, n);
	}
	if (!strcmp(route, "readv")) {
		if ((n = readv(fd, &iov, 1)) < 0)
			return fail(route);
		return got(buf, n);
	}
	if (!strcmp(route, "preadv2") || !strcmp(route, "preadv2_nowait")) {
		int flags = strstr(route, "nowait") ? RWF_NOWAIT : 0;
		if ((n = preadv2(fd, &iov, 1, 0, flags)) < 0)
			return fail(route);
		return got(buf, n);
	}
	if (!strcmp(route, "sendfile")) {
		if ((n = sendfile(p[1], fd, NULL, BUFSZ)) < 0)
			return fail(route);
		return drain(p[0]);
	}
	if (!strcmp(route, "splice")) {
		loff_t off = 0;
		if ((n = splice(fd, &off, p[1], NULL, BUFSZ, 0)) < 0)
			return fail(route);
		return drain(p[0]);
	}
	if (!strcmp(route, "copy_file_range") || !strcmp(route, "sendfile_file")) {
		int out = open(aux, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (out < 0)
			return fail("open aux");
		if (route[0] == 'c')
			n = copy_file_range(fd, NULL, out, NULL, BUFSZ, 0);
		else
			n = sendfile(out, fd, NULL, BUFSZ);
		if (n < 0)
			return fail(route);
		close(out);
		return readback(aux, n);
	}
	if (!strcmp(route, "ficlone") || !strcmp(route, "ficlonerange")) {
		int out = open(aux, O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (out < 0)
			return fail("open aux");
		int r;
		if (route[7] == 'r') {
			struct file_clone_range fcr = {.src_fd = fd, .src_offset = 0, .src_length = 0, .dest_offset = 0};
			r = ioctl(out, FICLONERANGE, &fcr);
		} else {
			r = ioctl(out, FICLONE, fd);
		}
		if (r < 0)
			return fail(route);
		close(out);
		return readback(aux, 0);
	}
	if (!strncmp(route, "mmap", 4) || !strncmp(route, "readahead", 9) || !strncmp(route, "fadvise", 7)) {
		/* readahead_mmap, fadvise_mmap: populate the page cache first, then map */
		if (!strncmp(route, "readahead", 9) && syscall(SYS_readahead, fd, (loff_t)0, (size_t)BUFSZ) < 0)
			printf("note readahead: %d\n", errno);
		if (!strncmp(route, "fadvise", 7) && (errno = posix_fadvise(fd, 0, BUFSZ, POSIX_FADV_WILLNEED)))
			printf("note fadvise: %d\n", errno);
		int shared = strstr(route, "private") ? MAP_PRIVATE : MAP_SHARED;
		int prot = PROT_READ | (wr ? PROT_WRITE : 0);
		char *m = mmap(NULL, BUFSZ, prot, shared, fd, 0);
		if (m == MAP_FAILED)
			return fail("mmap");
		if (madvise(m, BUFSZ, MADV_WILLNEED) < 0)
			printf("note madvise: %d\n", errno);
		if (wr) {
			memcpy(m, "PWNED", 5);
			if (msync(m, BUFSZ, MS_SYNC) < 0)
				return fail("msync");
			return wrote(5);
		}
		memcpy(buf, m, 32);
		return got(buf, 32);
	}
	if (!strncmp(route, "uring", 5))
		return uring(route, fd, p, aux);
	if (!strcmp(route, "aio_read") || !strcmp(route, "aio_write"))
		return aio(fd, route[4] == 'w');

	/* writes */
	memcpy(buf, "PWNED", 5);
	iov.iov_len = 5;
	if (!strcmp(route, "write") || !strcmp(route, "direct_write")) {
		size_t len = strstr(route, "direct") ? 4096 : 5;
		if ((n = write(fd, buf, len)) < 0)
			return fail(route);
		return wrote(n);
	}
	if (!strcmp(route, "pwrite")) {
		if ((n = pwrite(fd, buf, 5, 0)) < 0)
			return fail(route);
		return wrote(n);
	}
	if (!strcmp(route, "writev")) {
		if ((n = writev(fd, &iov, 1)) < 0)
			return fail(route);
		return wrote(n);
	}
	if (!strcmp(route, "pwritev2_nowait") || !strcmp(route, "pwritev2_append")) {
		int flags = strstr(route, "nowait") ? RWF_NOWAIT : RWF_APPEND;
		if ((n = pwritev2(fd, &iov, 1, 0, flags)) < 0)
			return fail(route);
		return wrote(n);
	}
	if (!strcmp(route, "ftruncate") || !strcmp(route, "open_trunc")) {
		if (route[0] == 'f' && ftruncate(fd, 0) < 0)
			return fail(route);
		return wrote(0);
	}
	if (!strcmp(route, "fallocate") || !strcmp(route, "punch_hole") || !strcmp(route, "zero_range")) {
		int mode = 0;
		off_t len = 1 << 20;
		if (route[0] == 'p')
			mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, len = 4096;
		if (route[0] == 'z')
			mode = FALLOC_FL_ZERO_RANGE, len = 4096;
		if (fallocate(fd, mode, 0, len) < 0)
			return fail(route);
		return wrote(len);
	}
	if (!strcmp(route, "splice_to")) {
		if (write(p[1], buf, 5) != 5)
			return fail("write pipe");
		loff_t off = 0;
		if ((n = splice(p[0], NULL, fd, &off, 5, 0)) < 0)
			return fail(route);
		return wrote(n);
	}
	if (!strcmp(route, "sendfile_to") || !strcmp(route, "copy_file_range_to")) {
		int in = open(aux, O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (in < 0 || pwrite(in, "PWNED", 5, 0) != 5)
			return fail("aux");
		loff_t off = 0;
		if (route[0] == 's')
			n = sendfile(fd, in, &off, 5);
		else
			n = copy_file_range(in, &off, fd, NULL, 5, 0);
		if (n < 0)
			return fail(route);
		return wrote(n);
	}
	fprintf(stderr, "unknown route %s\n", route);
	return 2;
}
