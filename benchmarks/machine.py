"""What the benchmarks record about the machine they ran on: its load around a run (`MachineLoad`) and peak memory.
Shared by benchmarks/intl.py and benchmarks/flexmol.py (imported as `machine`: a script's own folder is on sys.path)."""
from __future__ import annotations
import os, resource, time


def peak_rss_mb() -> float:
    "This process's peak resident memory so far, in MB (Linux reports KiB)."
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_jiffies() -> dict:
    "CPU jiffies of the whole machine since boot, from /proc/stat: normal-priority busy, niced busy, total."
    f = [int(x) for x in open('/proc/stat').readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = f + [0] * (8 - len(f))
    return dict(normal=user + system + irq + softirq, niced=nice, steal=steal, total=sum(f))


def _own_cpu_s() -> float:
    r, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


class MachineLoad:
    """The machine's load around a run: the load average before it, and the shares of the machine's CPU time that other
    processes used in the seconds before it and during it, at normal priority and niced (background jobs at
    `nice -n 10..19` run only in cycles that would otherwise idle, so they compete far less)."""
    def __init__(self, probe_s: float = 2.0):
        self.n_cpu, self.probe_s = os.cpu_count() or 1, probe_s
        self.loadavg_before = [round(x, 2) for x in os.getloadavg()]
        self.runnable_before = open('/proc/loadavg').read().split()[3]      # runnable / all tasks, a snapshot
        start = self._mark()
        time.sleep(probe_s)
        self.before = self._shares(start)
        self.start = self._mark()

    @staticmethod
    def _mark(): return _cpu_jiffies(), _own_cpu_s()

    def _shares(self, start) -> dict:
        (j0, own0), (j1, own1) = start, self._mark()
        total = max(1, j1['total'] - j0['total'])
        own = (own1 - own0) * os.sysconf('SC_CLK_TCK')          # counted as niced if this process is niced
        mine_niced = os.nice(0) > 0
        return dict(normal=round(max(0.0, (j1['normal'] - j0['normal'] - (0 if mine_niced else own)) / total), 3),
                    niced=round(max(0.0, (j1['niced'] - j0['niced'] - (own if mine_niced else 0)) / total), 3),
                    steal=round((j1['steal'] - j0['steal']) / total, 3))     # taken by the hypervisor (a VM)

    def record(self) -> dict:
        "Call after the run: the load figures and one sentence for the protocol."
        during = self._shares(self.start)
        quiet = max(self.before['normal'], during['normal'], self.before['niced'], during['niced']) < 0.1
        rec = dict(cpu_count=self.n_cpu, loadavg_before_1_5_15min=self.loadavg_before,
                   runnable_tasks_before=self.runnable_before, others_cpu_share_before=self.before,
                   others_cpu_share_during=during, quiet=quiet)
        pc = lambda x: f'{100 * x:.0f} %'
        rec['sentence'] = (
            f"load average before the run {self.loadavg_before[0]:.2f} (1 min; it lags, so it still counts jobs paused "
            f"just before); other processes used {pc(self.before['normal'])} of the {self.n_cpu} cores at normal "
            f"priority in the {self.probe_s:.0f} s before the run and {pc(during['normal'])} during it, and niced "
            f"background jobs {pc(self.before['niced'])} and {pc(during['niced'])}"
            + (f" (the hypervisor took {pc(during['steal'])} during it)" if during['steal'] > 0.02 else '') + ": "
            + ("a quiet machine." if quiet else
               "the machine was shared, so wall-clock figures are lower bounds of a quiet machine's."))
        return rec
