"""``python -m bench``: every benchmark, one after the other, in one run."""

from bench import outbox

if __name__ == "__main__":
    print("== outbox relay vs raw producer")
    outbox.main()
