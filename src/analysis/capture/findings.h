/* Findings: problems the agent's rules observed in the running program
 * (FINDING records; docs/findings.md), grouped for the report.
 *
 * Records are grouped by (id, file, line) across captures: how often, the
 * largest and the summed count and bytes, and the endpoints of the
 * requests they were made in (a FINDING names its request by id; the
 * REQUEST record that names the endpoint comes later, so the request is
 * remembered until then -- only requests with findings, only until they
 * end; the last requests that ended are remembered too, for findings
 * made by a task that outlived its request). A small catalog knows the rules
 * memhound ships: title, fix, the anchor in docs/findings.md, and how to put
 * the numbers into words; an id it does not know is shown with the id as title
 * and the record's detail text as evidence.
 *
 *   mh_findings_init(&f, &pool);
 *   per capture: mh_findings_begin(); mh_findings_visit() for each
 *                REQUEST and FINDING event; mh_findings_end();
 *   mh_findings_finish(); read f.v in f.order; mh_findings_release(). */
#ifndef MH_FINDINGS_H
#define MH_FINDINGS_H

#include <stddef.h>
#include <stdint.h>

#include "../../format/capture_read.h"
#include "../../util/msg.h"
#include "../../util/strpool.h"

/* Groups kept; findings past them are counted in `dropped`. */
#define MH_FINDINGS_MAX_GROUPS ((size_t)1 << 16)
/* Endpoints named per group. */
#define MH_FINDINGS_ENDPOINTS 3

/* A rule memhound knows. */
struct mh_finding_kind {
    const char *id;
    const char *title;
    const char *fix;
    /* Writes the evidence, with the group's numbers, into buf. */
    void (*evidence)(char *buf, size_t n, const struct mh_finding_kind *k,
                     uint64_t occurrences, uint64_t count_max,
                     uint64_t count_total, uint64_t bytes_max,
                     uint64_t bytes_total);
};

struct mh_finding {
    /* String ids in the pool. */
    uint32_t id, file, function;
    uint32_t detail; /* of the first record */
    uint32_t line;
    const struct mh_finding_kind *kind; /* NULL: not in the catalog */
    uint64_t occurrences;
    uint64_t count_max, count_total; /* totals saturate at 2^64 - 1 */
    uint64_t bytes_max, bytes_total;

    /* Set by mh_findings_finish(). */
    uint32_t evidence;                         /* string id */
    uint32_t endpoints[MH_FINDINGS_ENDPOINTS]; /* string ids, most
                                                  frequent first */
    uint64_t endpoint_counts[MH_FINDINGS_ENDPOINTS];
    size_t nendpoints;
};

struct mh_findings_priv;

struct mh_findings {
    struct mh_strpool *strings;
    struct mh_finding *v; /* in order of first sight */
    size_t n;
    uint64_t dropped; /* records past MH_FINDINGS_MAX_GROUPS */
    /* Set by mh_findings_finish(): by total bytes, then occurrences. */
    uint32_t *order;
    struct mh_findings_priv *priv;
};

void mh_findings_init(struct mh_findings *f, struct mh_strpool *strings);
/* Frees everything the module holds. */
void mh_findings_release(struct mh_findings *f);

/* Starts a capture (request ids are per capture). MH_ENOMEM. */
int mh_findings_begin(struct mh_findings *f) MH_MUST_USE;
/* Takes MH_EV_FINDING and MH_EV_REQUEST events (others are ignored).
 * MH_ENOMEM, MH_ETOOBIG. */
int mh_findings_visit(struct mh_findings *f,
                      const struct mh_cap_event *ev) MH_MUST_USE;
/* After the capture: findings of requests that never ended count for the
 * "(in progress)" endpoint. MH_ENOMEM, MH_ETOOBIG. */
int mh_findings_end(struct mh_findings *f) MH_MUST_USE;
/* Evidence texts, endpoints, order. Call once. MH_ENOMEM, MH_ETOOBIG. */
int mh_findings_finish(struct mh_findings *f) MH_MUST_USE;

/* The catalog entry for an id, or NULL. */
const struct mh_finding_kind *mh_findings_kind(const char *id, size_t n);
/* "docs/findings.md#<id>" for a catalog entry. */
#define MH_FINDINGS_DOCS "docs/findings.md#"

#endif
