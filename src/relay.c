/* relay: placeholder until the relay client lands; every call fails. */
#include "relay.h"

#include <errno.h>

/* Not built yet. */
int
relay_open(uv_loop_t *loop, const struct relay_settings *s,
	struct tls_ctx *tls, struct logger *lg, struct relay **out)
{
	(void)loop;
	(void)s;
	(void)tls;
	(void)lg;
	*out = NULL;
	return -ENOSYS;
}

/* Not built yet. */
int
relay_send(struct relay *r, const struct relay_msg *m, relay_done_cb cb,
	void *arg)
{
	(void)r;
	(void)m;
	(void)cb;
	(void)arg;
	return -ENOSYS;
}

/* Nothing runs. */
unsigned
relay_active(const struct relay *r)
{
	(void)r;
	return 0;
}

/* Nothing to close. */
void
relay_close(struct relay *r, relay_closed_cb cb, void *arg)
{
	(void)r;
	cb(arg);
}
