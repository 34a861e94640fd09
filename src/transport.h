/*
 * transport: the [transport NAME] table (SPEC "Pipe transports"). Each
 * transport binds domains to a command in the pipe-address grammar (a name
 * in [pipe] app-dir, no '*'), with a code.N map, a time limit, output and
 * error files, and a mode. Queue-mode transports are delivered from the
 * queue by the scheduler like pipe addresses; sync-mode transports run
 * during SMTP DATA (transport_sync_run) and their mapped reply is the SMTP
 * reply. Mail for a sync transport that does not come over SMTP (Submitted,
 * sendmail, ForeignQueue, a restart) is delivered from the queue.
 */
#ifndef MP_TRANSPORT_H
#define MP_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "pipe.h"
#include "procslots.h"
#include "result.h"
#include "strv.h"

#define TRANSPORT_SYNC_TIME_LIMIT 60	/* seconds, SPEC default in sync mode */

struct transport {
	const struct config_transport *conf;	/* name, domains, files, codes */
	struct pipe_cmd cmd;			/* parsed command */
	uint64_t time_limit_s;			/* resolved default */
};

struct transport_table {
	struct transport *v;
	size_t n;
	struct strv domains;		/* every transport domain, lower-cased */
	const char **names;		/* parallel to domains (router_ctx) */
};

#define TRANSPORT_TABLE_INIT { NULL, 0, STRV_INIT, NULL }

/*
 * Build the table from c (which must outlive it). -EINVAL with *err
 * "FILE:LINE: [transport NAME] command: ..." (the line of the command key)
 * when a command does not parse, names a path, holds '*', or is refused
 * in mode = sync (transport_sync_refusal).
 */
int transport_table_build(const struct config *c, struct transport_table *t,
	char **err);
void transport_table_free(struct transport_table *t);
/*
 * Why cmd cannot be run by a sync transport (pure), or NULL: [FILE] (a
 * sync run has no queue file) and queue[NAME] (a sync run is not queued,
 * so it cannot keep a queue's order).
 */
const char *transport_sync_refusal(const struct pipe_cmd *cmd);
/* The transport called name, or NULL. */
const struct transport *transport_find(const struct transport_table *t,
	const char *name);
/* Set the transport-specific fields of a pipe request (cmd, codes, time
 * limit, sync, output and error files). */
void transport_request(const struct transport *tr, bool sync,
	struct pipe_request *req);

/* One recipient of a sync run. */
struct transport_sync_rcpt {
	const struct transport *tr;
	const char *recipient;		/* routed address (RECIPIENT) */
	const char *orig_recipient;	/* as received / ORCPT */
	struct result res;		/* filled by the run */
	struct pipe_info info;
	double slot_wait_s;		/* time it waited for a processor */
};

/* Every program of a sync run has finished; reply is the SMTP reply. */
typedef void (*transport_sync_cb)(void *arg, struct transport_sync_rcpt *r,
	size_t n, const struct result *reply);

/*
 * Run every recipient's program on the message (len bytes, LF line ends,
 * the Received: field on top), with DELIVERY_ID uid.N and QUEUE_ID uid
 * (there is no queue file), and call cb once with the one reply for the
 * whole transaction (transport_sync_reply). Each program first waits for
 * one of the processors shared with the queue (slots, FIFO), at most its
 * transport's time limit, which starts only when the program does: a
 * recipient that got no processor in time gets 451 4.3.2. message,
 * sender, uid and r must stay valid until cb. cb runs later, from the
 * loop; only when not a single wait could be set up does it run before
 * this returns.
 */
int transport_sync_run(struct pipe_module *pm, struct procslots *slots,
	const char *message, size_t len, const char *sender, const char *uid,
	struct transport_sync_rcpt *r, size_t n, transport_sync_cb cb,
	void *arg);
/*
 * One SMTP reply for several sync results (pure): the program's own reply
 * when there is one program; 250 when every program succeeded; otherwise
 * the first permanent failure if any, else the first temporary one (so a
 * client retries only what may succeed later).
 */
int transport_sync_reply(const struct transport_sync_rcpt *r, size_t n,
	struct result *out);

#endif
