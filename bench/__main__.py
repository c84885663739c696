"""``python -m bench``: every benchmark, one after the other, in one run."""

from bench import gateway, outbox

if __name__ == "__main__":
    print("== outbox relay vs raw producer")
    outbox.main()
    print("== gateway overhead per request")
    gateway.main()
