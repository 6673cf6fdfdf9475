"""What the load scripts share: a free loopback port, a process's resident
memory, and running N client threads while sampling that memory."""
import socket
import threading
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kib(pid, field="VmRSS"):
    """VmRSS (or another field, e.g. VmHWM) of /proc/PID/status, in KiB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_clients(client, clients, stop_at, pid=None):
    """Run client(i) in CLIENTS threads until they return; meanwhile sample
    PID's resident memory every 50 ms. Returns (seconds, peak KiB)."""
    peak = [rss_kib(pid) if pid else 0]

    def sample():
        while pid and time.time() < stop_at + 1:
            peak[0] = max(peak[0], rss_kib(pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    t0 = time.time()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - t0
    sampler.join()
    return elapsed, peak[0]
