"""Every allocation recorded (--trace-all): a list that keeps a few
hundred small records, a dict rebuilt and dropped each round."""
kept = []


def record(i):
    return {"id": i, "name": "user-%d" % i, "tags": ["a", "b"]}


def round_(n):
    scratch = {k: record(k) for k in range(50)}
    kept.append(record(n))
    return len(scratch)


for n in range(300):
    round_(n)
