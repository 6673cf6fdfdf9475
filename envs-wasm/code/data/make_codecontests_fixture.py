"""Writes codecontests-fixture.jsonl: a few small problems of our own in the
`deepmind/code_contests` schema (name, description, public/private/generated
tests as input/output lists, time limit, solutions by language code; 3 is
Python 3). Expected outputs come from running each solution with python3.

    python3 make_codecontests_fixture.py > codecontests-fixture.jsonl
"""
import json
import random
import subprocess
import sys

PROBLEMS = [
    ("A. Sum of Two", "Given two integers a and b (|a|, |b| <= 10^18), print a + b.\n\nInput: one line with a and b.\nOutput: one integer.",
     "a, b = map(int, input().split())\nprint(a + b)\n",
     lambda r: f"{r.randint(-10**18, 10**18)} {r.randint(-10**18, 10**18)}\n", 1),
    ("B. Best Segment", "Given n integers (1 <= n <= 10^5, |a_i| <= 10^9), print the largest sum of a non-empty contiguous segment.\n\nInput: n on the first line, the numbers on the second.\nOutput: one integer.",
     "import sys\ndata = sys.stdin.buffer.read().split()\nn = int(data[0])\nbest = cur = None\nfor x in map(int, data[1:1 + n]):\n    cur = x if cur is None or cur < 0 else cur + x\n    best = cur if best is None or cur > best else best\nprint(best)\n",
     lambda r: (lambda n: f"{n}\n{' '.join(str(r.randint(-50, 50)) for _ in range(n))}\n")(r.randint(1, 40)), 2),
    ("C. Brackets", "For each of t strings of brackets ()[]{} (1 <= t <= 100, each at most 100 long) print YES if it is balanced and NO otherwise.\n\nInput: t, then t lines.\nOutput: t lines.",
     "t = int(input())\npairs = {')': '(', ']': '[', '}': '{'}\nfor _ in range(t):\n    s = input().strip()\n    stack = []\n    ok = True\n    for c in s:\n        if c in '([{':\n            stack.append(c)\n        elif not stack or stack.pop() != pairs[c]:\n            ok = False\n            break\n    print('YES' if ok and not stack else 'NO')\n",
     lambda r: (lambda t: f"{t}\n" + "".join("".join(r.choice("()[]{}") for _ in range(r.randint(1, 8))) + "\n" for _ in range(t)))(r.randint(1, 6)), 1),
    ("D. Circle", "Given the radius r of a circle (1 <= r <= 10^4, an integer), print its area. Answers within 10^-6 (absolute or relative) are accepted.\n\nInput: r.\nOutput: the area.",
     "import math\nr = int(input())\nprint('%.9f' % (math.pi * r * r))\n",
     lambda r: f"{r.randint(1, 10**4)}\n", 1),
    ("E. Counting Primes", "Print how many primes are at most n (1 <= n <= 2*10^5).\n\nInput: n.\nOutput: the count.",
     "n = int(input())\nsieve = bytearray([1]) * (n + 1)\nsieve[0:2] = b'\\x00\\x00'[: n + 1]\nfor i in range(2, int(n ** 0.5) + 1):\n    if sieve[i]:\n        sieve[i * i :: i] = bytearray(len(range(i * i, n + 1, i)))\nprint(sum(sieve))\n",
     lambda r: f"{r.randint(1, 2 * 10**5)}\n", 2),
    ("F. Reversed Words", "Print the words of a line in reverse order, separated by single spaces.\n\nInput: one line of at most 1000 characters.\nOutput: one line.",
     "print(' '.join(reversed(input().split())))\n",
     lambda r: " ".join(r.choice(["alpha", "beta", "gamma", "delta", "x", "yz"]) for _ in range(r.randint(1, 7))) + "\n", 1),
]


def run(solution, stdin):
    out = subprocess.run([sys.executable, "-c", solution], input=stdin, capture_output=True, text=True, check=True)
    return out.stdout


def tests(solution, inputs):
    return {"input": inputs, "output": [run(solution, i) for i in inputs]}


def main():
    rng = random.Random(2026)
    for name, description, solution, make_input, seconds in PROBLEMS:
        public = [make_input(rng) for _ in range(2)]
        private = [make_input(rng) for _ in range(3)]
        generated = [make_input(rng) for _ in range(5)]
        row = {
            "name": name,
            "description": description,
            "public_tests": tests(solution, public),
            "private_tests": tests(solution, private),
            "generated_tests": tests(solution, generated),
            "source": 0,
            "difficulty": 0,
            "solutions": {"language": [3], "solution": [solution]},
            "incorrect_solutions": {"language": [], "solution": []},
            "time_limit": {"seconds": seconds, "nanos": 0},
            "memory_limit_bytes": 256000000,
        }
        print(json.dumps(row))


main()
