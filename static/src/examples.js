// Programs one click away. The security experiments only ever touch the sandbox itself:
// the network example creates sockets and tries the loopback address, never an outside host.

export const EXAMPLES = [
  {
    id: "hello",
    group: "Basics",
    title: "Hello (2 + 2)",
    code: "print(2 + 2)\n",
  },
  {
    id: "input",
    group: "Basics",
    title: "Ask for input()",
    code: `name = input("What's your name? ")
print(f"Hello, {name}!")
age = input("How old are you? ")
print(f"In ten years you will be {int(age) + 10}.")
`,
  },
  {
    id: "live",
    group: "Basics",
    title: "Live output (time.sleep)",
    code: `import time

for i in range(1, 11):
    print(f"tick {i:2d}", "#" * i, flush=True)
    time.sleep(0.5)
print("done")
`,
  },
  {
    id: "progress",
    group: "Basics",
    title: "Progress bar (\\r)",
    code: `import time

width = 30
for i in range(width + 1):
    bar = "#" * i + "." * (width - i)
    print(f"\\r[{bar}] {i * 100 // width:3d}%", end="", flush=True)
    time.sleep(0.08)
print()
print("finished")
`,
  },
  {
    id: "colors",
    group: "Basics",
    title: "ANSI colours",
    code: `names = ["black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"]
for i, name in enumerate(names):
    print(f"\\x1b[{30 + i}m{name:8}\\x1b[0m  \\x1b[1;{90 + i}mbright {name}\\x1b[0m")
print("\\x1b[1mbold\\x1b[0m \\x1b[3mitalic\\x1b[0m \\x1b[4munderline\\x1b[0m")
`,
  },
  {
    id: "traceback",
    group: "Basics",
    title: "A traceback (stderr)",
    code: `def average(values):
    return sum(values) / len(values)

print("average of [1, 2, 3]:", average([1, 2, 3]))
print("average of []:", average([]))
`,
  },
  {
    id: "plot",
    group: "Plots, data and files",
    title: "Live plot (matplotlib)",
    runtime: "scientific",
    code: `# Each plt.show() sends the figure to the console while the program runs.
import time

import matplotlib.pyplot as plt
import numpy as np

x = np.linspace(0, 4 * np.pi, 400)
for step in range(6):
    phase = step * 0.5
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    ax.plot(x, np.sin(x - phase), label="sin")
    ax.plot(x, np.cos(x - phase) * np.exp(-x / 10), label="damped cos")
    ax.set_title(f"Frame {step + 1} of 6 (phase {phase:.1f})")
    ax.set_ylim(-1.1, 1.1)
    ax.legend(loc="upper right")
    plt.show()
    print(f"frame {step + 1} drawn", flush=True)
    time.sleep(0.7)
print("done")
`,
  },
  {
    id: "csv",
    group: "Plots, data and files",
    title: "Summarise a CSV (pandas)",
    runtime: "scientific",
    files: [
      {
        path: "sales.csv",
        text: `date,region,product,units,price
2024-01-03,north,widget,12,2.50
2024-01-03,south,gadget,3,10.00
2024-01-04,north,gadget,5,10.00
2024-01-05,east,widget,20,2.40
2024-01-05,south,widget,7,2.50
2024-01-06,east,gizmo,1,25.00
2024-01-07,north,gizmo,1,25.00
2024-01-08,south,gadget,9,9.50
2024-01-09,east,widget,15,2.40
2024-01-10,north,gizmo,4,25.00
`,
      },
    ],
    code: `# sales.csv comes with this example as a file (see the chip under the editor):
# add your own with "Add file" or by dropping it on the editor.
import matplotlib.pyplot as plt
import pandas as pd

df = pd.read_csv("sales.csv", parse_dates=["date"])
df["revenue"] = df["units"] * df["price"]
print(f"{len(df)} rows, {df['date'].min():%d %b} to {df['date'].max():%d %b}\\n")
print(df.describe().round(2).to_string(), "\\n")
by_region = df.groupby("region")[["units", "revenue"]].sum().sort_values("revenue", ascending=False)
print(by_region.to_string())
ax = by_region["revenue"].plot.bar(title="Revenue by region", figsize=(5, 3), rot=0)
ax.figure.tight_layout()
plt.show()
`,
  },
  {
    id: "report",
    group: "Plots, data and files",
    title: "Write a report file",
    code: `# Files the program writes in its working directory come back as downloads.
import csv
import random
import statistics

random.seed(7)
rolls = [random.randint(1, 6) + random.randint(1, 6) for _ in range(1000)]

with open("rolls.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["throw", "total"])
    w.writerows(enumerate(rolls, 1))

with open("report.txt", "w") as f:
    f.write("Two dice, 1000 throws\\n")
    f.write(f"mean   {statistics.mean(rolls):.3f}\\n")
    f.write(f"stdev  {statistics.stdev(rolls):.3f}\\n")
    for total in range(2, 13):
        n = rolls.count(total)
        f.write(f"{total:2d} {n:4d} {'#' * (n // 5)}\\n")

print(open("report.txt").read())
print("wrote report.txt and rolls.csv")
`,
  },
  {
    id: "infinite",
    group: "Security experiments",
    title: "Infinite loop",
    code: `# Runs until the time limit, or until you press Stop.
print("spinning...", flush=True)
n = 0
while True:
    n += 1
`,
  },
  {
    id: "memory",
    group: "Security experiments",
    title: "Memory bomb",
    code: `# Grabs memory 10 MB at a time until the sandbox's memory limit stops it.
chunks = []
while True:
    chunks.append(b"x" * (10 * 1024 * 1024))
    print(f"holding {len(chunks) * 10} MB", flush=True)
`,
  },
  {
    id: "readonly",
    group: "Security experiments",
    title: "Write to the read-only root",
    code: `# The root filesystem is read-only; only a small /tmp is writable.
for path in ["/evil.txt", "/etc/evil.conf", "/usr/lib/evil.py", "/tmp/scratch.txt"]:
    try:
        with open(path, "w") as f:
            f.write("hello")
        print(f"wrote   {path}")
    except OSError as e:
        print(f"refused {path}: {e.strerror}")
`,
  },
  {
    id: "network",
    group: "Security experiments",
    title: "Network access",
    code: `# Only local attempts: list interfaces and try the loopback address.
import socket

try:
    print("interfaces:", [name for _, name in socket.if_nameindex()])
except OSError as e:
    print("interfaces: unavailable:", e)

try:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    print("created a TCP socket")
    s.close()
except OSError as e:
    print("socket() refused:", e)

try:
    socket.create_connection(("127.0.0.1", 80), timeout=1).close()
    print("connected to 127.0.0.1:80")
except OSError as e:
    print("connect to 127.0.0.1:80 failed:", e)
`,
  },
  {
    id: "passwd",
    group: "Security experiments",
    title: "Read /etc/passwd",
    code: `# The sandbox's own /etc/passwd, not the host's.
import os

print("uid:", os.getuid(), "gid:", os.getgid())
with open("/etc/passwd") as f:
    print(f.read())
`,
  },
  {
    id: "forkbomb",
    group: "Security experiments",
    title: "Fork bomb (bounded)",
    code: `# Forks until the sandbox's process limit refuses; the children just wait.
import os, time

children = 0
for _ in range(10_000):
    try:
        pid = os.fork()
    except OSError as e:
        print(f"fork refused after {children} children: {e}", flush=True)
        break
    if pid == 0:
        time.sleep(2)
        os._exit(0)
    children += 1
else:
    print(f"forked {children} children without hitting a limit", flush=True)
`,
  },
  {
    id: "segfault",
    group: "Security experiments",
    title: "Segmentation fault",
    code: `# Reads address 0: the kernel stops the program with SIGSEGV.
import ctypes

print("about to crash", flush=True)
ctypes.string_at(0)
`,
  },
];

export function findExample(id) {
  return EXAMPLES.find((e) => e.id === id);
}
