/* smtpd: placeholder until the listener lands; every call fails. */
#include "smtpd.h"

#include <errno.h>

/* Not built yet. */
int
smtpd_open(const struct smtpd_deps *d, struct smtpd **out)
{
	(void)d;
	*out = NULL;
	return -ENOSYS;
}

/* Not built yet. */
int
smtpd_start(struct smtpd *sd)
{
	(void)sd;
	return -ENOSYS;
}

/* Nothing to stop. */
void
smtpd_stop(struct smtpd *sd, smtpd_stopped_cb cb, void *arg)
{
	(void)sd;
	cb(arg);
}

/* Nothing to free. */
void
smtpd_close(struct smtpd *sd)
{
	(void)sd;
}

/* No sessions. */
unsigned
smtpd_sessions(const struct smtpd *sd)
{
	(void)sd;
	return 0;
}
