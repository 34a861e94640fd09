/*
 * libFuzzer target for config.c: any bytes go through config_defaults,
 * config_parse and config_free. Must never crash, leak, or report an
 * error without a message; accepted input must leave a usable config.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Parse one input on top of the defaults and check the invariants. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c;
	char *err = NULL;
	int r;

	if (config_defaults(&c, "/base", "fuzz.example") < 0)
		return 0;
	r = config_parse(&c, (const char *)data, size, "fuzz.conf", &err);
	if (r == -EINVAL && (err == NULL || strncmp(err, "fuzz.conf:", 10) != 0))
		abort();
	if (r == 0) {
		if (err != NULL || c.queue.nretry == 0 || c.pipe.app_dir == NULL ||
		    c.pipe.processors < 1 || c.pipe.processors > 1000)
			abort();
		for (size_t i = 0; i < c.ntransports; i++) {
			const struct config_transport *t = &c.transports[i];

			if (t->command == NULL || t->domains.n == 0 ||
			    config_transport_for_domain(&c, t->domains.v[0]) != t ||
			    !config_is_local_domain(&c, t->domains.v[0]))
				abort();
		}
	}
	free(err);
	config_free(&c);
	return 0;
}
