#!/usr/bin/env python3
"""Writes the body of a benchmark zone (no $ORIGIN): SOA, NS ns1, ns1's address, optionally a
static name, then A records LABEL000000... until the file holds COUNT records in all."""
import argparse

ap = argparse.ArgumentParser(description=__doc__)
ap.add_argument("out")
ap.add_argument("count", type=int, help="records in all")
ap.add_argument("--ns", required=True, help="address of ns1")
ap.add_argument("--static", help="address of static.<zone>, if wanted")
ap.add_argument("--label", default="h", help="prefix of the generated names")
ap.add_argument("--net", default="127.2", help="first two octets of the generated addresses")
a = ap.parse_args()
width = len(str(a.count))
with open(a.out, "w") as f:
    f.write(f"$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 300\n@ NS ns1\nns1 A {a.ns}\n")
    fixed = 3
    if a.static:
        f.write(f"static A {a.static}\n")
        fixed += 1
    for i in range(a.count - fixed):
        f.write(f"{a.label}{i:0{width}d} A {a.net}.{(i >> 8) & 255}.{i & 255}\n")
