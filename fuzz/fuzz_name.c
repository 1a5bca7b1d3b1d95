/*
 * Repository names (berth_name_valid): every /v2/<name>/... URL and the from= query argument.
 * Property: no crash, and the verdict equals an independent POSIX ERE of the grammar
 *   [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*, at most 255 bytes.
 */
#include <regex.h>

#include "fuzz_common.h"
#include "registry/reference.h"

#define COMPONENT "[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*"
static regex_t name_re;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (regcomp(&name_re, "^" COMPONENT "(/" COMPONENT ")*$", REG_EXTENDED | REG_NOSUB) != 0)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	int got = berth_name_valid(s);
	size_t len = strlen(s);
	/* The ERE is only consulted on short inputs: its matcher is slow on long ones, and
	 * anything longer than BERTH_NAME_MAX must be refused anyway. */
	if (len > BERTH_NAME_MAX) {
		FUZZ_CHECK(!got, "accepted a %zu-byte name", len);
	} else {
		int want = regexec(&name_re, s, 0, NULL, 0) == 0;
		FUZZ_CHECK(got == want, "berth_name_valid(\"%s\") = %d, grammar says %d", s, got, want);
	}
	FUZZ_CHECK(berth_name_valid(NULL) == 0, "NULL accepted");
	free(s);
	return 0;
}
