/*
 * Upload ids (berth_uuid_valid): the <uuid> of /v2/<name>/blobs/uploads/<uuid>, which becomes a
 * storage path component, so anything but 8-4-4-4-12 lowercase hex must be refused.
 * Properties: no crash (the check reads up to 37 bytes: inputs shorter than that must not be
 * over-read); the verdict equals an independent check; berth_uuid4 output is always valid.
 */
#include "fuzz_common.h"
#include "core/util.h"

static int ref_uuid(const char *s)
{
	static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
	if (strlen(s) != 36)
		return 0;
	for (size_t i = 0; i < 36; i++) {
		char c = s[i];
		if (shape[i] == '-' ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return 0;
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	int got = berth_uuid_valid(s);
	FUZZ_CHECK(got == ref_uuid(s), "berth_uuid_valid(\"%s\") = %d", s, got);
	free(s);

	char id[37];
	berth_uuid4(id);
	FUZZ_CHECK(berth_uuid_valid(id) && ref_uuid(id), "berth_uuid4 made \"%s\"", id);
	return 0;
}
