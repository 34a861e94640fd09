/*
 * foreign: ForeignQueue import (SPEC "ForeignQueue"). At start and every
 * scan interval, if BASE/ForeignQueue exists, every .msg in it (and in its
 * subfolders) is moved into Queue/ under a fresh ID and handed to the
 * scheduler (enqueue_import), every .tmp is deleted, other files are left
 * alone; a log line says when the folder has been emptied. The queue
 * limit holds imports back until there is room.
 */
#ifndef MP_FOREIGN_H
#define MP_FOREIGN_H

#include <stdint.h>
#include <uv.h>

#include "enqueue.h"
#include "log.h"

struct foreign;

int foreign_open(uv_loop_t *loop, const char *base_dir,
	uint64_t scan_interval_s, struct enqueue *eq, struct logger *lg,
	struct foreign **out);
/* Scan now and then every interval. */
int foreign_start(struct foreign *f);
/* Called when no import is in flight after foreign_stop. */
typedef void (*foreign_stopped_cb)(void *arg);
void foreign_stop(struct foreign *f, foreign_stopped_cb cb, void *arg);
/* Free; only after the stopped callback. */
void foreign_close(struct foreign *f);

#endif
