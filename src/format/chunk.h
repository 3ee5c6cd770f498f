/* The framing captures and heap dumps share (docs/capture-format.md,
 * "File" and "Chunk"): a 12-byte file header (magic, version, flags),
 * then chunks (tag 'K', u32 length, u32 CRC-32, u8 flags, payload; zstd
 * optional). This module checks the header, walks the chunks, verifies
 * each CRC and decompresses; the format readers parse the payloads.
 *
 * Like the readers it serves it does no I/O and trusts nothing: a chunk
 * cut by the end of the buffer ends the walk as "truncated" (what a crash
 * or a full disk leaves), anything else malformed is an error naming the
 * offset and the reason. It holds at most one decompressed payload
 * (MH_CAP_CHUNK_RAW_MAX) at a time. */
#ifndef MH_CHUNK_H
#define MH_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "../util/msg.h"
#include "capture.h"

struct mh_chunk {
    uint64_t offset;        /* file offset of the chunk's tag byte */
    const uint8_t *payload; /* decompressed when the chunk was compressed;
                               valid until the next mh_chunk_next() */
    size_t len;
    int compressed; /* offsets inside the payload are then not file
                       offsets: errors name the chunk's */
};

struct mh_chunk_reader {
    const char *what;  /* "capture", "heap dump": for messages */
    const char *magic; /* MH_CAP_MAGIC_LEN bytes */
    unsigned version;

    int truncated;         /* the buffer ends inside a chunk */
    uint64_t truncated_at; /* that chunk's offset */
    uint64_t error_offset;
    char error[200]; /* why mh_chunk_begin()/mh_chunk_next() failed */

    /* private */
    const uint8_t *buf_;
    size_t len_, off_;
    uint8_t *raw_;
    size_t raw_cap_;
    void *dctx_; /* ZSTD_DCtx, made on the first compressed chunk */
};

/* Sets up a reader for files that start with `magic` and `version`;
 * `what` and `magic` must outlive it. Nothing is allocated yet. */
void mh_chunk_reader_init(struct mh_chunk_reader *c, const char *what,
                          const char *magic, unsigned version);
/* Frees the decompression buffer and context. */
void mh_chunk_reader_release(struct mh_chunk_reader *c);

/* Checks the file header of buf[0..len) (which must outlive the walk).
 * Returns MH_OK, MH_ETRUNC (empty, or cut inside the header) or
 * MH_EFORMAT, with c->error and c->error_offset set. */
int mh_chunk_begin(struct mh_chunk_reader *c, const uint8_t *buf,
                   size_t len) MH_MUST_USE;

/* The next chunk: returns 1 with *out filled, 0 at the end of the buffer
 * (c->truncated says whether it cut a chunk), or a negative MH_E* code
 * with c->error and c->error_offset set (MH_ENOMEM when decompression
 * runs out of memory). */
int mh_chunk_next(struct mh_chunk_reader *c, struct mh_chunk *out) MH_MUST_USE;

#endif
