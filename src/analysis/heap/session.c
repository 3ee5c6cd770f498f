/* One loaded heap dump (session.h). */
#include <stdio.h>
#include <string.h>

#include "../../util/mem.h"
#include "session.h"

void
mh_heap_session_init(struct mh_heap_session *a)
{
    memset(a, 0, sizeof(*a));
    mh_heap_image_init(&a->dump, 0);
    mh_heap_graph_init(&a->graph);
    mh_heap_dom_init(&a->dom);
}

void
mh_heap_session_release(struct mh_heap_session *a)
{
    mh_heap_dom_release(&a->dom);
    mh_heap_graph_release(&a->graph);
    mh_free(a->group);
    mh_heap_image_release(&a->dump);
    if (a->own_cap) {
        mh_cap_reader_release(a->own_cap);
        mh_free(a->own_cap);
    }
    mh_heap_session_init(a);
}

int
mh_heap_session_add_capture(struct mh_heap_session *a, const uint8_t *buf,
                            size_t len)
{
    struct mh_cap_reader *r = mh_malloc(sizeof(*r));
    if (!r) {
        snprintf(a->error, sizeof(a->error), "%s", mh_strerror(MH_ENOMEM));
        return MH_ENOMEM;
    }
    mh_cap_reader_init(r);
    int rc = mh_cap_parse(r, buf, len, NULL, NULL);
    if (rc) {
        snprintf(a->error, sizeof(a->error), "%s", r->error);
        mh_cap_reader_release(r);
        mh_free(r);
        return rc;
    }
    if (a->own_cap) {
        mh_cap_reader_release(a->own_cap);
        mh_free(a->own_cap);
    }
    a->own_cap = r;
    a->cap = r;
    return MH_OK;
}

int
mh_heap_session_load(struct mh_heap_session *a, struct mh_heap_types *types,
                     const uint8_t *buf, size_t len, size_t max_bytes)
{
    mh_heap_image_init(&a->dump, max_bytes);
    int rc = mh_heap_parse(&a->dump, buf, len);
    if (rc) {
        snprintf(a->error, sizeof(a->error), "%s", a->dump.error);
        return rc;
    }
    for (uint32_t o = 0; o < a->dump.nobjs; o++)
        if (a->dump.size[o] > MH_HEAP_SIZE_PLAUSIBLE) {
            a->dump.size[o] = 0;
            a->bad_sizes++;
        }
    rc = mh_heap_types_add(types, &a->dump, &a->group);
    if (rc == MH_OK)
        rc = mh_heap_graph_build(&a->graph, &a->dump);
    if (rc)
        snprintf(a->error, sizeof(a->error), "cannot analyse the dump: %s",
                 mh_strerror(rc));
    return rc;
}

int
mh_heap_session_dominators(struct mh_heap_session *a)
{
    if (a->have_dom)
        return MH_OK;
    int rc = mh_heap_dom_build(&a->dom, &a->graph);
    if (rc) {
        snprintf(a->error, sizeof(a->error),
                 "cannot build the dominator tree: %s", mh_strerror(rc));
        return rc;
    }
    a->have_dom = 1;
    return MH_OK;
}
