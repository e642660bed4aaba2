/* fs_drops.c: drop folders, the folders of append datasets in the mounted
 * room (docs/mount.md "Drop folders", docs/rules.md "Drops").
 *
 * In datasets/NAME/ of a dataset with "drops": "append", every drop is a
 * file under its own name: `cp export_2026-12-03.csv datasets/NAME/` adds
 * one (the ordinary upload path: each file is validated on its own and
 * signed as a dataset.provisioned naming it), `rm` of one withdraws it (a
 * signed dataset.deprovisioned naming it) after the grace period of a
 * pending rm (fs_upload.c: an upload of the same name holds it, so a bad
 * file written by install or tar -x never costs the drop), `mv` drops it
 * again under the new name and withdraws the old one. The same file (name and bytes)
 * copied again is counted once: the copy succeeds and nothing changes. */
#include "fs_int.h"

bool fs__is_append(const fs *f, const char *ds)
{
	const rm_dataset *d = f->st.def && ds ? rm_def_dataset(f->st.def, ds) : NULL;
	return d && d->append;
}

bool fs__drop_known(fs *f, const char *ds, const char *name)
{
	pthread_mutex_lock(&f->mu);
	bool r = fs__is_append(f, ds) && (!name || rm_state_drop(&f->st, ds, name) != NULL);
	pthread_mutex_unlock(&f->mu);
	return r;
}

bool fs__drop_same_size(fs *f, const char *ds, const char *name, uint64_t size, uint8_t cur[32])
{
	const rm_drop *dr = rm_state_drop(&f->st, ds, name);
	if (!dr || dr->bytes != size)
		return false;
	memcpy(cur, dr->sha256, 32);
	return true;
}

int fs__drop_resolve(fs *f, const char *ds, const char *name, struct desc *d)
{
	const rm_drop *dr = rm_state_drop(&f->st, ds, name);
	if (!dr || !rm_may_read_data(&f->st, f->opt.me, ds))
		return -ENOENT;
	const pdep *p = fs__pdep_for(f, ds, name);
	if (p && memcmp(p->sha256, dr->sha256, 32) == 0)
		return -ENOENT; /* rm pending (fs__drop_rm) */
	d->kind = K_DS_DATA;
	d->ds = ds;
	d->prov = rm_state_provision(&f->st, ds);
	d->drop = dr;
	return 0;
}

int fs__drop_rm(fs *f, const char *ds, const rm_drop *d)
{
	dcr_err err = {0};
	int rc = rm_check_withdraw(&f->st, f->opt.me, ds, d->file, &err);
	if (rc < 0) {
		pthread_mutex_unlock(&f->mu);
		fs__set_last_error(f, d->file, &err);
		pthread_mutex_lock(&f->mu);
		return -fs_errno(rc);
	}
	pdep *p = fs__pdep_for(f, ds, d->file);
	if (!p) {
		p = dcr_calloc(1, sizeof *p);
		p->dataset = dcr_strdup(ds);
		p->file = dcr_strdup(d->file);
		p->drop = true;
		p->next = f->pending;
		f->pending = p;
	}
	memcpy(p->sha256, d->sha256, 32);
	p->at_ms = dcr_now_ms();
	p->due_ms = dcr_mono_ms() + (f->opt.rm_grace_ms ? f->opt.rm_grace_ms : FS_RM_GRACE_MS);
	f->force_inval = true;
	return 0;
}

int fs__drop_withdraw(fs *f, const char *ds, const char *file)
{
	dcr_err err = {0};
	dcr_buf body;
	int rc = rm_check_withdraw(&f->st, f->opt.me, ds, file, &err);
	if (rc < 0)
		goto fail;
	char *dsc = dcr_strdup(ds), *filec = dcr_strdup(file);
	dcr_buf_init(&body);
	rm_body_withdrawn(&body, dsc, filec);
	pthread_mutex_unlock(&f->mu);
	rc = f->be.submit(f->be.ctx, RM_EV_DEPROVISIONED, body.data, body.len, &err);
	dcr_buf_release(&body);
	if (rc == 0) {
		char ts[32];
		fs__iso_time(dcr_now_ms(), ts);
		fs__set_dserr(f, dsc, dcr_asprintf("%s withdrew %s", ts, filec));
		fs__fetch_apply(f, &err);
	}
	pthread_mutex_lock(&f->mu);
	f->force_inval = true;
	free(dsc);
	free(filec);
	if (rc == 0)
		return 0;
fail:
	pthread_mutex_unlock(&f->mu);
	fs__set_last_error(f, file, &err);
	pthread_mutex_lock(&f->mu);
	return -fs_errno(rc);
}

int fs__drop_rename(fs *f, const char *ds, const char *file, const uint8_t sha256[32],
                    const char *newname)
{
	int rc = fs__reprovision_from(f, ds, file, sha256, newname);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&f->mu);
	/* Still the drop that was renamed (not dropped again meanwhile)? */
	const rm_drop *dr = rm_state_drop(&f->st, ds, file);
	if (dr && memcmp(dr->sha256, sha256, 32) == 0)
		rc = fs__drop_withdraw(f, ds, file);
	pthread_mutex_unlock(&f->mu);
	return rc;
}
