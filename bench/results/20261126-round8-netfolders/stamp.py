import sys, time
out = sys.stdout
for line in sys.stdin:
    out.write(f"{time.time():.6f} {line}")
