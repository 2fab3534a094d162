// execref MNT: an allow-all responder in C for FAN_OPEN_EXEC_PERM and FAN_OPEN_PERM on MNT's
// whole mount (what `guard --mount --events open,exec` and fapolicyd mark): read, answer,
// close, nothing else. bench/exec.sh runs it as the floor of any listener that answers the
// two permission events an exec of a file on that mount raises (fanref answers FAN_OPEN_PERM
// only). Note FAN_ALL_PERM_EVENTS does not include FAN_OPEN_EXEC_PERM: an event of a kind
// not answered here would leave the exec blocked.
// Build: cc -O2 -o execref execref.c; run as root; prints "ready", then "events N" on SIGTERM.
#define _GNU_SOURCE
#include <sys/fanotify.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>
static volatile sig_atomic_t stop;
static void on_term(int s) { (void)s; stop = 1; }
int main(int argc, char **argv) {
	if (argc != 2) { fprintf(stderr, "usage: execref MNT\n"); return 2; }
	int fd = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC, O_RDONLY | O_LARGEFILE | O_CLOEXEC);
	if (fd < 0) { perror("fanotify_init"); return 1; }
	if (fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM, AT_FDCWD, argv[1]) < 0) { perror("fanotify_mark"); return 1; }
	struct sigaction sa = { .sa_handler = on_term };
	sigaction(SIGTERM, &sa, NULL); sigaction(SIGINT, &sa, NULL);
	printf("ready\n"); fflush(stdout);
	static char buf[1 << 16] __attribute__((aligned(8)));
	long events = 0;
	while (!stop) {
		ssize_t len = read(fd, buf, sizeof buf);
		if (len <= 0) break;
		struct fanotify_event_metadata *m = (void *)buf;
		for (; FAN_EVENT_OK(m, len); m = FAN_EVENT_NEXT(m, len)) {
			if (m->mask & (FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM | FAN_ACCESS_PERM)) {
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
