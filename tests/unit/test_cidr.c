/*
 * Unit tests for cidr.c: parsing networks as config.c stores them, prefix
 * edges (/0, /32, /128, odd lengths), masking of host bits, IPv4-mapped
 * IPv6 clients, wrong families, every refusal, and the per-client keys
 * (an IPv4 address, an IPv6 /64).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include "cidr.h"
#include "strv.h"

/* Parse the networks given as NULL-terminated strings; must succeed. */
static void
list(struct cidr_list *l, const char *const *nets)
{
	struct strv sv = STRV_INIT;
	const char *why = NULL;
	int r;

	for (; *nets; nets++)
		assert_int_equal(strv_push(&sv, *nets), 0);
	r = cidr_list_parse(&sv, l, &why);
	if (r != 0)
		fail_msg("refused (%d): %s", r, why ? why : "-");
	assert_int_equal(l->n, sv.n);
	strv_free(&sv);
}

/* Parse one network into l. */
static void
one(struct cidr_list *l, const char *net)
{
	const char *nets[] = { net, NULL };

	list(l, nets);
}

/* Does the textual address (v4 or v6 by ':') match l? */
static bool
match(const struct cidr_list *l, const char *addr)
{
	if (strchr(addr, ':')) {
		struct sockaddr_in6 in6;

		memset(&in6, 0, sizeof(in6));
		in6.sin6_family = AF_INET6;
		in6.sin6_port = htons(25);
		assert_int_equal(inet_pton(AF_INET6, addr, &in6.sin6_addr), 1);
		return cidr_list_match(l, (const struct sockaddr *)&in6);
	} else {
		struct sockaddr_in in;

		memset(&in, 0, sizeof(in));
		in.sin_family = AF_INET;
		in.sin_port = htons(25);
		assert_int_equal(inet_pton(AF_INET, addr, &in.sin_addr), 1);
		return cidr_list_match(l, (const struct sockaddr *)&in);
	}
}

/* The per-client key of the textual address (v4 or v6 by ':'). */
static void
key_of(const char *addr, uint8_t key[CIDR_KEY_LEN])
{
	struct sockaddr_in6 in6;
	struct sockaddr_in in;
	const struct sockaddr *sa = (const struct sockaddr *)&in6;

	memset(&in6, 0, sizeof(in6));
	memset(&in, 0, sizeof(in));
	if (strchr(addr, ':')) {
		in6.sin6_family = AF_INET6;
		in6.sin6_port = htons(1025);
		assert_int_equal(inet_pton(AF_INET6, addr, &in6.sin6_addr), 1);
	} else {
		in.sin_family = AF_INET;
		in.sin_port = htons(1025);
		assert_int_equal(inet_pton(AF_INET, addr, &in.sin_addr), 1);
		sa = (const struct sockaddr *)&in;
	}
	assert_int_equal(cidr_client_key(sa, key), 0);
}

/* Do two addresses count as the same client? */
static bool
same_client(const char *a, const char *b)
{
	uint8_t ka[CIDR_KEY_LEN], kb[CIDR_KEY_LEN];

	key_of(a, ka);
	key_of(b, kb);
	return memcmp(ka, kb, CIDR_KEY_LEN) == 0;
}

/*
 * Per-client keys: one IPv4 address (mapped or not) is one client; an
 * IPv6 /64 is one client; other families are refused.
 */
static void
test_client_key(void **state)
{
	struct sockaddr_un un;
	uint8_t k[CIDR_KEY_LEN];

	(void)state;
	assert_true(same_client("192.0.2.1", "192.0.2.1"));
	assert_true(same_client("192.0.2.1", "::ffff:192.0.2.1"));
	assert_false(same_client("192.0.2.1", "192.0.2.2"));
	assert_false(same_client("0.0.0.1", "::1"));
	assert_true(same_client("2001:db8:1:2::1", "2001:db8:1:2:ffff::9"));
	assert_true(same_client("2001:db8:1:2::1",
		"2001:db8:1:2:8000:1:2:3"));
	assert_false(same_client("2001:db8:1:2::1", "2001:db8:1:3::1"));
	assert_false(same_client("2001:db8::1", "::ffff:32.1.13.184"));
	key_of("2001:db8:1:2:3:4:5:6", k);
	assert_memory_equal(k, "\x20\x01\x0d\xb8\x00\x01\x00\x02"
		"\0\0\0\0\0\0\0\0", CIDR_KEY_LEN);
	key_of("198.51.100.7", k);
	assert_memory_equal(k, "\0\0\0\0\0\0\0\0\0\0\xff\xff"
		"\xc6\x33\x64\x07", CIDR_KEY_LEN);
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	assert_int_equal(cidr_client_key((const struct sockaddr *)&un, k),
		-EAFNOSUPPORT);
	assert_int_equal(cidr_client_key(NULL, k), -EINVAL);
}

/* net is refused with -EINVAL and reason why_expected. */
static void
refused(const char *net, const char *why_expected)
{
	struct strv sv = STRV_INIT;
	struct cidr_list l = CIDR_LIST_INIT;
	const char *why = NULL;

	assert_int_equal(strv_push(&sv, "127.0.0.0/8"), 0);
	assert_int_equal(strv_push(&sv, net), 0);
	if (cidr_list_parse(&sv, &l, &why) != -EINVAL)
		fail_msg("'%s' accepted", net);
	assert_non_null(why);
	assert_string_equal(why, why_expected);
	assert_null(l.v);
	assert_int_equal(l.n, 0);
	strv_free(&sv);
}

/* The default list and the stored forms of config.c. */
static void
test_defaults(void **state)
{
	static const char *const nets[] = { "127.0.0.0/8", "::1/128", NULL };
	struct cidr_list l = CIDR_LIST_INIT;

	(void)state;
	list(&l, nets);
	assert_int_equal(l.v[0].family, AF_INET);
	assert_int_equal(l.v[0].prefix, 8);
	assert_int_equal(l.v[1].family, AF_INET6);
	assert_int_equal(l.v[1].prefix, 128);
	assert_true(match(&l, "127.0.0.1"));
	assert_true(match(&l, "127.255.255.255"));
	assert_true(match(&l, "::1"));
	assert_true(match(&l, "::ffff:127.0.0.1"));
	assert_false(match(&l, "128.0.0.1"));
	assert_false(match(&l, "126.255.255.255"));
	assert_false(match(&l, "::2"));
	assert_false(match(&l, "192.0.2.1"));
	assert_false(match(&l, "2001:db8::1"));
	cidr_list_free(&l);
	assert_null(l.v);
	assert_int_equal(l.n, 0);
	cidr_list_free(&l);
	cidr_list_free(NULL);
}

/* A bare address is a host network (/32, /128). */
static void
test_bare_address(void **state)
{
	struct cidr_list l = CIDR_LIST_INIT;

	(void)state;
	one(&l, "192.0.2.1");
	assert_int_equal(l.v[0].prefix, 32);
	assert_true(match(&l, "192.0.2.1"));
	assert_false(match(&l, "192.0.2.0"));
	assert_false(match(&l, "192.0.2.2"));
	assert_true(match(&l, "::ffff:192.0.2.1"));
	cidr_list_free(&l);

	one(&l, "2001:db8::");
	assert_int_equal(l.v[0].prefix, 128);
	assert_true(match(&l, "2001:db8::"));
	assert_false(match(&l, "2001:db8::1"));
	cidr_list_free(&l);
}

/* /0 matches everything of its family and nothing of the other. */
static void
test_prefix_zero(void **state)
{
	struct cidr_list l = CIDR_LIST_INIT;

	(void)state;
	one(&l, "0.0.0.0/0");
	assert_true(match(&l, "0.0.0.0"));
	assert_true(match(&l, "255.255.255.255"));
	assert_true(match(&l, "::ffff:10.1.2.3"));
	assert_false(match(&l, "::1"));
	assert_false(match(&l, "2001:db8::1"));
	cidr_list_free(&l);

	one(&l, "::/0");
	assert_true(match(&l, "::"));
	assert_true(match(&l, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
	assert_true(match(&l, "2001:db8::1"));
	/* IPv4 clients are IPv4, even when the socket maps them */
	assert_false(match(&l, "10.1.2.3"));
	assert_false(match(&l, "::ffff:10.1.2.3"));
	cidr_list_free(&l);
}

/* Odd prefixes: /23 and /65, bits on both sides of the boundary. */
static void
test_odd_prefixes(void **state)
{
	struct cidr_list l = CIDR_LIST_INIT;

	(void)state;
	one(&l, "10.0.2.0/23");
	assert_true(match(&l, "10.0.2.0"));
	assert_true(match(&l, "10.0.3.255"));
	assert_false(match(&l, "10.0.1.255"));
	assert_false(match(&l, "10.0.4.0"));
	cidr_list_free(&l);

	one(&l, "2001:db8:0:0:8000::/65");
	assert_true(match(&l, "2001:db8::8000:0:0:0"));
	assert_true(match(&l, "2001:db8::ffff:ffff:ffff:ffff"));
	assert_false(match(&l, "2001:db8::7fff:ffff:ffff:ffff"));
	assert_false(match(&l, "2001:db8::"));
	assert_false(match(&l, "2001:db8:0:1:8000::"));
	cidr_list_free(&l);

	one(&l, "2001:db8::/65");
	assert_true(match(&l, "2001:db8::7fff:ffff:ffff:ffff"));
	assert_false(match(&l, "2001:db8::8000:0:0:0"));
	cidr_list_free(&l);

	one(&l, "192.0.2.128/25");
	assert_true(match(&l, "192.0.2.128"));
	assert_false(match(&l, "192.0.2.127"));
	cidr_list_free(&l);

	one(&l, "128.0.0.0/1");
	assert_true(match(&l, "200.1.1.1"));
	assert_false(match(&l, "127.255.255.255"));
	cidr_list_free(&l);

	one(&l, "10.1.2.3/31");
	assert_true(match(&l, "10.1.2.2"));
	assert_true(match(&l, "10.1.2.3"));
	assert_false(match(&l, "10.1.2.4"));
	cidr_list_free(&l);

	one(&l, "2001:db8::1/127");
	assert_true(match(&l, "2001:db8::"));
	assert_true(match(&l, "2001:db8::1"));
	assert_false(match(&l, "2001:db8::2"));
	cidr_list_free(&l);
}

/* Host bits set in the network are masked off. */
static void
test_host_bits(void **state)
{
	static const uint8_t want4[16] = { 192, 0, 2, 0 };
	static const uint8_t want6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
		0x80 };
	struct cidr_list l = CIDR_LIST_INIT;

	(void)state;
	one(&l, "192.0.2.77/24");
	assert_memory_equal(l.v[0].addr, want4, 16);
	assert_true(match(&l, "192.0.2.1"));
	assert_false(match(&l, "192.0.3.1"));
	cidr_list_free(&l);

	one(&l, "2001:db8::ffff:ffff:ffff:ffff/65");
	assert_memory_equal(l.v[0].addr, want6, 16);
	assert_true(match(&l, "2001:db8::8000:0:0:1"));
	assert_false(match(&l, "2001:db8::1"));
	cidr_list_free(&l);

	one(&l, "255.255.255.255/0");
	assert_memory_equal(l.v[0].addr, (uint8_t[16]){ 0 }, 16);
	assert_true(match(&l, "1.2.3.4"));
	cidr_list_free(&l);
}

/* /32 and /128 are exact; a list matches if any member does. */
static void
test_full_prefixes_and_lists(void **state)
{
	static const char *const nets[] = { "192.0.2.1/32",
		"2001:db8::1/128", "198.51.100.0/24", NULL };
	struct cidr_list l = CIDR_LIST_INIT;

	(void)state;
	list(&l, nets);
	assert_true(match(&l, "192.0.2.1"));
	assert_false(match(&l, "192.0.2.2"));
	assert_true(match(&l, "2001:db8::1"));
	assert_false(match(&l, "2001:db8::2"));
	assert_true(match(&l, "198.51.100.200"));
	assert_true(match(&l, "::ffff:198.51.100.200"));
	assert_false(match(&l, "203.0.113.1"));
	cidr_list_free(&l);
}

/* Mapped networks written in IPv6 form apply to IPv4 clients. */
static void
test_mapped_networks(void **state)
{
	struct cidr_list l = CIDR_LIST_INIT;

	(void)state;
	one(&l, "::ffff:192.0.2.0/120");
	assert_int_equal(l.v[0].family, AF_INET);
	assert_int_equal(l.v[0].prefix, 24);
	assert_true(match(&l, "192.0.2.9"));
	assert_true(match(&l, "::ffff:192.0.2.9"));
	assert_false(match(&l, "192.0.3.9"));
	cidr_list_free(&l);

	one(&l, "::ffff:0:0/96");
	assert_int_equal(l.v[0].family, AF_INET);
	assert_int_equal(l.v[0].prefix, 0);
	assert_true(match(&l, "8.8.8.8"));
	assert_false(match(&l, "2001:db8::1"));
	cidr_list_free(&l);

	/* shorter than /96: an IPv6 network, never an IPv4 client */
	one(&l, "::ffff:0:0/95");
	assert_int_equal(l.v[0].family, AF_INET6);
	assert_false(match(&l, "8.8.8.8"));
	assert_true(match(&l, "::fffe:0:1"));
	cidr_list_free(&l);

	/* IPv4-compatible (not mapped) addresses stay IPv6 */
	one(&l, "::192.0.2.1");
	assert_int_equal(l.v[0].family, AF_INET6);
	assert_false(match(&l, "192.0.2.1"));
	assert_true(match(&l, "::192.0.2.1"));
	cidr_list_free(&l);
}

/* Other socket families and NULL never match. */
static void
test_wrong_family(void **state)
{
	static const char *const nets[] = { "0.0.0.0/0", "::/0", NULL };
	struct cidr_list l = CIDR_LIST_INIT, empty = CIDR_LIST_INIT;
	struct sockaddr_un un;
	struct sockaddr_in in;

	(void)state;
	list(&l, nets);
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	strcpy(un.sun_path, "/tmp/x");
	assert_false(cidr_list_match(&l, (const struct sockaddr *)&un));
	assert_false(cidr_list_match(&l, NULL));
	memset(&in, 0, sizeof(in));
	in.sin_family = AF_UNSPEC;
	assert_false(cidr_list_match(&l, (const struct sockaddr *)&in));
	in.sin_family = AF_INET;
	assert_true(cidr_list_match(&l, (const struct sockaddr *)&in));
	assert_false(cidr_list_match(&empty, (const struct sockaddr *)&in));
	assert_false(cidr_list_match(NULL, (const struct sockaddr *)&in));
	cidr_list_free(&l);
}

/* An empty list parses to nothing and matches nothing. */
static void
test_empty(void **state)
{
	struct strv sv = STRV_INIT;
	struct cidr_list l = CIDR_LIST_INIT;

	(void)state;
	assert_int_equal(cidr_list_parse(&sv, &l, NULL), 0);
	assert_null(l.v);
	assert_int_equal(l.n, 0);
	assert_false(match(&l, "127.0.0.1"));
	assert_int_equal(cidr_list_parse(NULL, &l, NULL), 0);
	assert_int_equal(l.n, 0);
	cidr_list_free(&l);
}

/* Every kind of bad network is refused with its reason. */
static void
test_refused(void **state)
{
	(void)state;
	refused("", "bad IP address in network");
	refused("/8", "bad IP address in network");
	refused("localhost", "bad IP address in network");
	refused("256.0.0.0/8", "bad IP address in network");
	refused("1.2.3/24", "bad IP address in network");
	refused("1.2.3.4.5", "bad IP address in network");
	refused(" 1.2.3.4", "bad IP address in network");
	refused("1.2.3.4 ", "bad IP address in network");
	refused("::g", "bad IP address in network");
	refused("1:2:3:4:5:6:7:8:9", "bad IP address in network");
	refused("[::1]/128", "bad IP address in network");
	refused("10.0.0.0/33", "bad prefix length (0-32 after '/')");
	refused("10.0.0.0/", "bad prefix length (0-32 after '/')");
	refused("10.0.0.0/-1", "bad prefix length (0-32 after '/')");
	refused("10.0.0.0/+8", "bad prefix length (0-32 after '/')");
	refused("10.0.0.0/8/8", "bad prefix length (0-32 after '/')");
	refused("10.0.0.0/8x", "bad prefix length (0-32 after '/')");
	refused("10.0.0.0/ 8", "bad prefix length (0-32 after '/')");
	refused("10.0.0.0/4294967304", "bad prefix length (0-32 after '/')");
	refused("::/129", "bad prefix length (0-128 after '/')");
	refused("::1/", "bad prefix length (0-128 after '/')");
	refused("::ffff:1.2.3.4/200", "bad prefix length (0-128 after '/')");
}

/* Leading zeros in a prefix length are plain decimal. */
static void
test_prefix_digits(void **state)
{
	struct cidr_list l = CIDR_LIST_INIT;

	(void)state;
	one(&l, "10.0.0.0/008");
	assert_int_equal(l.v[0].prefix, 8);
	assert_true(match(&l, "10.200.0.1"));
	cidr_list_free(&l);
	one(&l, "10.0.0.0/032");
	assert_int_equal(l.v[0].prefix, 32);
	cidr_list_free(&l);
}

/* Run every test of this file. */
int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_bare_address),
		cmocka_unit_test(test_prefix_zero),
		cmocka_unit_test(test_odd_prefixes),
		cmocka_unit_test(test_host_bits),
		cmocka_unit_test(test_full_prefixes_and_lists),
		cmocka_unit_test(test_mapped_networks),
		cmocka_unit_test(test_wrong_family),
		cmocka_unit_test(test_client_key),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_prefix_digits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
