/*
 * submit: the Submitted folder (SPEC "Submitted folder"). Picks up NAME.sub
 * files at once on a file-system notification and on every scan interval
 * (the scan is the truth, the notification only a hint), opens them
 * safely (no symlinks, regular single-link files only, the owner recorded
 * as the submitting user), applies the Submitted rules and enqueues them;
 * the .sub is removed only once the queue file is durable. A file that
 * cannot be submitted is renamed to NAME.bad with a log line; so is one
 * whose every recipient is refused at submission (Enqueue Asynchronously
 * off for local submission). Above the queue limit files stay where they
 * are until there is room.
 */
#ifndef MP_SUBMIT_H
#define MP_SUBMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "enqueue.h"
#include "log.h"
#include "store.h"

struct submit;
struct router_ctx;	/* router.h */

struct submit_settings {
	const char *base_dir;		/* absolute */
	uint64_t scan_interval_s;
	const char *hostname;		/* Message-ID, Received: */
	const char *default_domain;	/* qualifies unqualified addresses */
	bool set_owner;			/* running as root: enforce 1730 */
	gid_t submit_gid;		/* mailpipe-submit, or (gid_t)-1 */
	/*
	 * When Enqueue Asynchronously (enqueue_async) does not apply to
	 * local submission, each recipient is routed with router before
	 * the file is queued, and one the queue would fail at once is
	 * refused (logged, not queued); NULL: every recipient is queued.
	 * The router is borrowed (it may change between files: SIGHUP).
	 */
	const struct router_ctx *router;
	enum enqueue_async enqueue_async;
	bool direct_pipe;		/* [pipe] direct = local */
};

/*
 * Create or fix BASE/Submitted (mode 1730, group submit_gid when
 * set_owner) and prepare; blocking, for start-up only.
 */
int submit_open(uv_loop_t *loop, const struct submit_settings *s,
	struct enqueue *eq, struct store *st, struct logger *lg,
	struct submit **out);
/*
 * A recovered queue file says it came from Submitted/NAME with this
 * device and inode: if that file is still there, it was already queued
 * (the server stopped between the commit and the unlink), so it is
 * removed instead of submitted again.
 */
int submit_forget(struct submit *sb, const char *name, dev_t dev, ino_t ino);
/* Start watching and scanning. */
int submit_start(struct submit *sb);
/* Scan soon (e.g. when the queue has room again). */
void submit_poke(struct submit *sb);
/* Called when nothing is in flight any more after submit_stop. */
typedef void (*submit_stopped_cb)(void *arg);
/* Stop picking up files; in-flight submissions finish. */
void submit_stop(struct submit *sb, submit_stopped_cb cb, void *arg);
/* Free; only after the stopped callback. */
void submit_close(struct submit *sb);

#endif
