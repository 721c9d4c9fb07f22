/*
 * pause: the process that holds a pod's namespaces open.
 *
 * It sleeps until signalled.  As PID 1 of a shared PID namespace it also reaps orphaned
 * children (SIGCHLD), so zombies never accumulate.  SIGINT and SIGTERM end it with
 * status 0; `pause -v` prints its version and exits.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef VERSION
#define VERSION "unknown"
#endif

static void on_terminate(int signo)
{
	static const char msg[] = "pause: shutting down on signal\n";
	(void)signo;
	/* Only async-signal-safe calls here. */
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
		/* Nothing useful to do: we are leaving anyway. */
	}
	_exit(0);
}

static void on_child(int signo)
{
	int saved = errno;
	(void)signo;
	while (waitpid(-1, NULL, WNOHANG) > 0) {
		/* reap every child that has exited */
	}
	errno = saved;
}

static int install(int signo, void (*handler)(int), int flags)
{
	struct sigaction action;

	memset(&action, 0, sizeof(action));
	action.sa_handler = handler;
	action.sa_flags = flags;
	sigemptyset(&action.sa_mask);
	return sigaction(signo, &action, NULL);
}

int main(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-v") == 0) {
			printf("pause.c v%s\n", VERSION);
			return 0;
		}
	}
	if (getpid() != 1) {
		fprintf(stderr, "pause: warning: not running as PID 1, orphans will not be reaped here\n");
	}
	if (install(SIGINT, on_terminate, 0) != 0 || install(SIGTERM, on_terminate, 0) != 0 ||
	    install(SIGCHLD, on_child, SA_NOCLDSTOP | SA_RESTART) != 0) {
		perror("pause: sigaction");
		return 1;
	}
	for (;;) {
		pause();
	}
	/* not reached */
	return 42;
}
