#!/usr/bin/env python3
"""Walks a table of the mistakes a user can make on the command line or with a file, runs the
program on each, and checks that it stops with a non-zero exit code and a message holding the
words that say what was wrong and what to do (and never a crash, a hang or a Python-style trace).

Usage: bad_inputs.py DIFFAUTOML_SEARCH PREDICT   (registered with ctest as bad_inputs_table)
"""
import gzip
import os
import struct
import subprocess
import sys
import tempfile

search, predict = sys.argv[1], sys.argv[2]
tmp = tempfile.mkdtemp(prefix="dam_bad_inputs_")


def idx(dims, values):
    return struct.pack(">BBBB", 0, 0, 8, len(dims)) + b"".join(struct.pack(">I", d) for d in dims) + bytes(values)


def images(n):
    return idx([n, 28, 28], [(i * 37 + (i // 784) * 11) % 256 for i in range(n * 784)])


def labels(n, top=10):
    return idx([n], [i % top for i in range(n)])


NAMES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz"]


def dataset(name, **override):
    """A Fashion-MNIST-shaped folder of 300 training and 60 test images; `override` maps a file's
    index in NAMES to raw bytes written instead of its valid gzipped content (None: left out)."""
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    files = [gzip.compress(images(300)), gzip.compress(labels(300)), gzip.compress(images(60)),
             gzip.compress(labels(60))]
    for key, value in override.items():
        files[int(key[1:])] = value
    for f, content in zip(NAMES, files):
        if content is not None:
            with open(os.path.join(d, f), "wb") as out:
                out.write(content)
    return d


good = dataset("good")
quick = ["--data", good, "--validation", "50", "--batch", "32", "--epochs", "1", "--minutes", "0",
         "--out", os.path.join(tmp, "out"), "--quiet", "--threads", "1"]
valid_images = gzip.compress(images(300))
corrupt_ckpt = os.path.join(tmp, "corrupt_ckpt")
os.makedirs(corrupt_ckpt)
with open(os.path.join(corrupt_ckpt, "checkpoint.bin"), "wb") as f:
    f.write(b"DAMCKPT1" + bytes(40))
bad_model = os.path.join(tmp, "model.bin")
with open(bad_model, "wb") as f:
    f.write(b"DAMARCH1" + bytes(100))

# (program, arguments, words every one of which the message must hold)
TABLE = [
    # command line (quick + the bad flag: the last of an option given twice counts)
    (search, ["--ephocs", "3"], ["--ephocs", "did you mean", "--epochs"]),
    (search, quick + ["--epochs", "abc"], ["--epochs", "abc"]),
    (search, quick + ["--epochs", "0"], ["epochs 0", "must be >= 1"]),
    (search, quick + ["--batch", "0"], ["batch 0 must be >= 1"]),
    (search, quick + ["--lr", "-1"], ["learning rate -1", "must be > 0", "--lr"]),
    (search, quick + ["--lr", "nan"], ["--lr", "nan"]),
    (search, quick + ["--label-smoothing", "2"], ["label_smoothing must be in [0, 1), got 2"]),
    (search, quick + ["--validation", "0"], ["validation", "(0, 1)", "got 0"]),
    (search, quick + ["--validation", "5000"], ["validation slice of 5000", "a count below 300"]),
    (search, quick + ["--validation", "280"], ["too few for a validation slice of 280", "lower the batch size"]),
    (search, quick + ["--minutes", "-1"], ["minutes -1", ">= 0"]),
    (search, ["--da", "fancy"], ["--da", "fancy", "pair"]),
    (search, ["--nas", "foo"], ["--nas", "foo", "dsnas"]),
    (search, ["--space", "resnet"], ["--space", "resnet", "shuffle"]),
    (search, ["--arch", "1,2"], ["--arch", "--nas fixed"]),
    (search, ["--da", "randaugment"], ["--da randaugment", "--nas fixed --hpo fixed", "got --nas dsnas"]),
    (search, quick + ["--da", "randaugment", "--nas", "fixed", "--hpo", "fixed", "--ra-m", "11"], ["M = 11", "[0, 10]"]),
    (search, quick + ["--da", "randaugment", "--nas", "fixed", "--hpo", "fixed", "--da-ops", "Invert"],
     ["none of its 14 ops", "give at least one"]),
    (search, ["--resume", "--out", corrupt_ckpt, "--data", good], ["checkpoint", "truncated", "delete it"]),
    (search, quick + ["--out", "/proc/no_such_dir/x"], ["cannot create the output folder", "/proc/no_such_dir/x", "--out"]),
    (search, quick + ["--lr", "1e6"], ["hyperparameter 'lr'", "[0.1, 1]", "start it inside the range"]),
    (search, quick + ["--lr", "1e6", "--hpo", "fixed"], ["non-finite", "Try a lower --lr"]),
    # data files
    (search, ["--data", os.path.join(tmp, "nowhere")], ["does not exist", "dataset-fashion-mnist"]),
    (search, ["--data", dataset("missing", f0=None)], ["train-images-idx3-ubyte.gz", "does not exist"]),
    (search, ["--data", dataset("empty", f0=b"")], ["train-images-idx3-ubyte.gz", "0 bytes", "too short"]),
    (search, ["--data", dataset("plain_text", f0=b"hello, this is not an IDX file\n")],
     ["train-images-idx3-ubyte.gz", "wrong magic number", "not an IDX file"]),
    (search, ["--data", dataset("truncated_gzip", f0=valid_images[:len(valid_images) // 2])],
     ["train-images-idx3-ubyte.gz", "not a valid gzip stream", "truncated"]),
    (search, ["--data", dataset("swapped", f1=gzip.compress(images(300)))],
     ["train-labels-idx1-ubyte.gz", "has 3 dimensions", "a labels file (N) has 1", "swapped"]),
    (search, ["--data", dataset("count_mismatch", f1=gzip.compress(labels(299)))],
     ["300 images", "299 labels", "do not belong together"]),
    (search, ["--data", dataset("label_range", f1=gzip.compress(labels(300, top=12)))],
     ["label 10", "outside [0, 10)"]),
    (search, ["--data", dataset("huge_header", f0=gzip.compress(idx([2 ** 31, 28, 28], [0] * 1000)))],
     ["train-images-idx3-ubyte.gz", "truncated", "header promises"]),
    (search, ["--data", dataset("short_payload", f0=gzip.compress(images(300)[:-500]))],
     ["train-images-idx3-ubyte.gz", "truncated", "complete copy"]),
    (search, ["--data", dataset("image_size", f0=gzip.compress(idx([300, 32, 32], [0] * 300 * 1024)))],
     ["32x32 images", "28x28 were expected"]),
    # model files
    (predict, ["--model", os.path.join(tmp, "no_model.bin")], ["no_model.bin", "no such file"]),
    (predict, ["--model", bad_model], ["model.bin", "checksum mismatch"]),
    (predict, ["--model", good], ["is a folder, not a file"]),
]

failures = 0
for program, args, words in TABLE:
    cmd = [program] + args
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, errors="replace")
        out, code = p.stdout + p.stderr, p.returncode
    except subprocess.TimeoutExpired:
        out, code = "(timed out after 300 s)", None
    missing = [w for w in words if w not in out]
    crashed = code is None or code < 0 or code == 0 or "Traceback" in out or "terminate called" in out
    status = "ok" if not missing and not crashed else "FAIL"
    name = os.path.basename(program) + " " + " ".join(a.replace(tmp, "$TMP") for a in args)
    last = out.strip().splitlines()[-1] if out.strip() else "(no output)"
    print(f"{status:4} exit {code}: {name}\n     -> {last.replace(tmp, '$TMP')}")
    if status != "ok":
        failures += 1
        if missing:
            print(f"     missing words: {missing}")
        print("     full output:\n" + "\n".join("       " + l for l in out.replace(tmp, "$TMP").splitlines()[-15:]))
print(f"bad_inputs: {len(TABLE) - failures} of {len(TABLE)} bad inputs gave a clear error")
sys.exit(1 if failures else 0)
