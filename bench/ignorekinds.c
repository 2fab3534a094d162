/*
 * ignorekinds: what the kernel charges an open that an ignore mark silences, by kind of
 * mark, with no userspace in the way (bench/ignorekinds.sh). A content group holds a
 * filesystem mark for FAN_OPEN_PERM on FILE's filesystem (a subtree guard's kernel mark)
 * and one evictable ignore mark:
 *
 *   ignorekinds file FILE   on FILE itself (FAN_MARK_IGNORE: the backend's per-file mark)
 *   ignorekinds dir FILE    on FILE's directory, for its children (FAN_MARK_IGNORE_SURV with
 *                           FAN_EVENT_ON_CHILD: the alternative docs/security.md weighs)
 *   ignorekinds guard FILE  file's mark, with the kernel side of a subtree guard of the same
 *                           filesystem: its group pre-content with unlimited queue and marks,
 *                           and the backend's FID group for the subtree's directory events
 *                           (bench/ignore.sh's floor: the guard's marks, no user space)
 *
 * It answers any permission event it still gets (allow, counted), prints "ready", and runs
 * until SIGTERM. Build: cc -O2 -o ignorekinds ignorekinds.c. Run as root.
 */
#define _GNU_SOURCE
#include <sys/fanotify.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef FAN_MARK_EVICTABLE
#define FAN_MARK_EVICTABLE 0x200
#endif
#ifndef FAN_MARK_IGNORE
#define FAN_MARK_IGNORE 0x400
#endif

static volatile sig_atomic_t stop;
static void on_term(int s) { (void)s; stop = 1; }

int main(int argc, char **argv) {
	if (argc != 3 || (strcmp(argv[1], "file") && strcmp(argv[1], "dir") && strcmp(argv[1], "guard"))) {
		fprintf(stderr, "usage: ignorekinds file|dir|guard FILE\n");
		return 2;
	}
	int guard = !strcmp(argv[1], "guard");
	int fd = fanotify_init(guard ? FAN_CLASS_PRE_CONTENT | FAN_UNLIMITED_QUEUE | FAN_UNLIMITED_MARKS | FAN_CLOEXEC
				     : FAN_CLASS_CONTENT | FAN_CLOEXEC, O_RDONLY | O_LARGEFILE | O_CLOEXEC);
	if (fd < 0) { perror("fanotify_init"); return 1; }
	if (guard) {
		/* The backend's FID group, its mask (fdinfo): create, delete, moves, attrib, directories too. */
		int fid = fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME_TARGET | FAN_UNLIMITED_MARKS | FAN_CLOEXEC | FAN_NONBLOCK,
					O_RDONLY | O_LARGEFILE | O_CLOEXEC);
		if (fid < 0) { perror("fanotify_init fid"); return 1; }
		if (fanotify_mark(fid, FAN_MARK_ADD | FAN_MARK_FILESYSTEM,
				  FAN_CREATE | FAN_DELETE | FAN_MOVED_FROM | FAN_MOVED_TO | FAN_ATTRIB | FAN_ONDIR | FAN_EVENT_ON_CHILD,
				  AT_FDCWD, argv[2]) < 0) {
			perror("fanotify_mark fid filesystem");
			return 1;
		}
	}
	if (fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_OPEN_PERM, AT_FDCWD, argv[2]) < 0) {
		perror("fanotify_mark filesystem");
		return 1;
	}
	int r;
	if (strcmp(argv[1], "dir")) {
		r = fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_IGNORE | FAN_MARK_EVICTABLE, FAN_OPEN_PERM,
				  AT_FDCWD, argv[2]);
	} else {
		char *path = strdup(argv[2]);
		r = fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_IGNORE | FAN_MARK_IGNORED_SURV_MODIFY | FAN_MARK_EVICTABLE,
				  FAN_OPEN_PERM | FAN_EVENT_ON_CHILD, AT_FDCWD, dirname(path));
	}
	if (r < 0) { perror("fanotify_mark ignore"); return 1; }
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
				struct fanotify_response resp = { .fd = m->fd, .response = FAN_ALLOW };
				if (write(fd, &resp, sizeof resp) != sizeof resp) perror("write response");
			}
			if (m->fd >= 0) close(m->fd);
			events++;
		}
	}
	printf("events %ld\n", events);
	return 0;
}
