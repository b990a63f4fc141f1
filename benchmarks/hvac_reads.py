"""The plain-hvac baseline of the module-overhead measurement: the same Vault reads a no-change
``vault_pki_intermediate`` task makes (the paths come from the audit log of that task), done with
hvac in one Python process.

    python hvac_reads.py PATHS.json LOOPS  ->  JSON on stdout

VAULT_ADDR and VAULT_TOKEN come from the environment. Prints the time to import hvac, to build the
client, and of each loop of reads (the first loop pays for the TCP connection; later ones reuse it).
"""

import json
import os
import sys
import time

started = time.perf_counter()
import hvac  # noqa: E402  (timed)

imported = time.perf_counter()


def main():
    with open(sys.argv[1]) as f:
        paths = json.load(f)
    loops = int(sys.argv[2])
    client = hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["VAULT_TOKEN"])
    built = time.perf_counter()
    loop_times = []
    for _loop in range(loops):
        t0 = time.perf_counter()
        for path in paths:
            client.adapter.get("/v1/" + path)  # raises on an error status, like the module's reads
        loop_times.append(time.perf_counter() - t0)
    json.dump({"import": imported - started, "client": built - imported, "loops": loop_times,
               "reads_per_loop": len(paths)}, sys.stdout)


if __name__ == "__main__":
    main()
