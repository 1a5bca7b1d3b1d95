#include "helpers/registry.h"

#include "helpers/tmproot.h"
#include "registry/registry.h"
#include "storage/storage.h"

int berth_test_registry_new(struct berth_registry **out, char *dir, size_t dir_cap,
			    const char *root_name, const struct berth_registry_config *cfg)
{
	struct berth_registry_config c = { 0 };
	struct berth_storage_driver *d = NULL;
	if (cfg)
		c = *cfg;
	dir[0] = '\0';
	if (root_name) {
		if (berth_test_root_new(dir, dir_cap, root_name) < 0 ||
		    berth_fs_driver_new(&d, dir) < 0)
			return -1;
	} else if (berth_inmem_driver_new(&d) < 0) {
		return -1;
	}
	c.driver = d;
	return berth_registry_new(out, &c) < 0 ? -1 : 0;
}

void berth_test_registry_free(struct berth_registry *r, const char *dir)
{
	berth_registry_free(r);
	berth_test_root_remove(dir);
}
