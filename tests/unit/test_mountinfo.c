/* Unit tests for mountinfo.c: the parser on proc(5) shaped text. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "mountinfo.h"

static const char text[] =
	"22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
	/* optional fields before the "-" */
	"25 1 254:0 / / rw,relatime shared:1 master:2 - ext4 /dev/vda rw\n"
	/* an escaped space in the mount point; a second mount of 254:0 */
	"30 25 254:0 /srv /mnt/with\\040space rw - ext4 /dev/vda rw\n"
	"31 25 8:17 / /var/spool rw,noatime - xfs /dev/sdb1 rw,attr2\n"
	"32 25 0:45 / /tmp rw - tmpfs tmpfs rw\n"
	/* malformed lines: skipped, not guessed at */
	"33 25 8:x / /bad rw - ext4 /dev/bad rw\n"
	"34 25 8:33 / /nodash rw ext4 /dev/sdc1 rw\n"
	"35 25 8:49\n"
	"\n"
	"36 25 8:65 / /last rw - btrfs /dev/sde1 rw";	/* no final LF */

/* Look up maj:min in text; the type or NULL with the return value. */
static char *
look(const char *t, size_t len, unsigned maj, unsigned min, int *r)
{
	char *type = (char *)1;

	*r = mountinfo_fstype(t, len, maj, min, &type);
	if (*r < 0)
		assert_null(type);
	return type;
}

/* Each well-formed line gives its type, the first match wins. */
static void
test_types(void **state)
{
	struct { unsigned maj, min; const char *type; } cases[] = {
		{ 0, 21, "proc" }, { 254, 0, "ext4" }, { 8, 17, "xfs" },
		{ 0, 45, "tmpfs" }, { 8, 65, "btrfs" },
	};
	int r;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		char *t = look(text, sizeof(text) - 1, cases[i].maj,
			cases[i].min, &r);

		assert_int_equal(r, 0);
		assert_string_equal(t, cases[i].type);
		free(t);
	}
}

/* Unknown devices and malformed lines: -ENOENT, never a guess. */
static void
test_not_found(void **state)
{
	int r;

	(void)state;
	assert_null(look(text, sizeof(text) - 1, 8, 33, &r));	/* no "-" */
	assert_int_equal(r, -ENOENT);
	assert_null(look(text, sizeof(text) - 1, 8, 49, &r));	/* cut */
	assert_int_equal(r, -ENOENT);
	assert_null(look(text, sizeof(text) - 1, 9, 9, &r));
	assert_int_equal(r, -ENOENT);
	assert_null(look("", 0, 0, 0, &r));
	assert_int_equal(r, -ENOENT);
	/* "8:x" must not match 8:0 */
	assert_null(look(text, sizeof(text) - 1, 8, 0, &r));
	assert_int_equal(r, -ENOENT);
}

/* The length is honoured: nothing past len is read. */
static void
test_length(void **state)
{
	const char *cut = strstr(text, "31 25 8:17");
	int r;

	(void)state;
	assert_non_null(cut);
	assert_null(look(text, (size_t)(cut - text), 8, 17, &r));
	assert_int_equal(r, -ENOENT);
	/* the type field cut short by len: no type, so no match */
	cut = strstr(text, "xfs /dev/sdb1");
	assert_null(look(text, (size_t)(cut - text), 8, 17, &r));
	assert_int_equal(r, -ENOENT);
}

/* The real /proc/self/mountinfo knows the file system of "/". */
static void
test_dev(void **state)
{
	char *type = NULL;
	struct stat sb;

	(void)state;
	assert_int_equal(stat("/", &sb), 0);
	assert_int_equal(mountinfo_dev_fstype(sb.st_dev, &type), 0);
	assert_non_null(type);
	assert_true(strlen(type) > 0);
	assert_null(strchr(type, ' '));
	free(type);
	/* no mount has this device */
	assert_int_equal(mountinfo_dev_fstype(makedev(4095, 1048575), &type),
		-ENOENT);
	assert_null(type);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_not_found),
		cmocka_unit_test(test_length),
		cmocka_unit_test(test_dev),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
