/* Small files of state, replaced atomically and read with a size cap. */
#ifndef MXTLS_FILE_H
#define MXTLS_FILE_H

#include <stddef.h>

/*
 * Replace path with data: write path.tmp (mode 0600, never following a
 * symlink), fsync, rename, fsync the directory.  A crash leaves the old
 * file or the new one, never a mix.  0, or -1 with err.  Synchronous but
 * bounded by the (small) size of what is written.
 */
int file_replace(const char *path, const void *data, size_t len, char *err,
    size_t errlen);

/*
 * Read a whole file of at most max bytes into a new NUL-terminated buffer
 * (free()).  NULL with err when it is missing, unreadable or too big
 * (errno is ENOENT for a missing file).
 */
char *file_read(const char *path, size_t max, size_t *len, char *err,
    size_t errlen);

#endif
