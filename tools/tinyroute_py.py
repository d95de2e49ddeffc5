"""tinyroute for Python pack builders (issue 17 item 4): a ctypes binding of
build/libtinyroute-host.so (tools/hostlib.h), so a notebook or the fleet
step (tools/fleet_step.py) opens packs, routes, embeds and reads device logs
with the C parsers and the verification the CLI uses, never with a second
implementation of the formats. Needs numpy.

    import tinyroute_py as tr
    lib = tr.Library()                          # build/libtinyroute-host.so
    with lib.open_pack("p.trp", ["pub.pem"]) as p:   # verified, or tr.Error
        r = p.route(["What is 2+2?"], lam=None)    # pack defaults
        r.model, r.names, r.predicted, r.utility, r.nearest
        e = p.embed(["What is 2+2?"])           # int8, (n, dim)
    keys = lib.load_keys("device-keys")         # optional: authenticate logs
    with lib.open_log("dev.trl", keys) as log:
        recs = log.records()                    # dict of numpy arrays
        log.text(0), log.embeddings()

Errors are tr.Error with the library's message (e.g. "p.trp: TR_E_BAD_SIGNATURE:
...", the CLI's words without "tinyroute CMD: "). A Pack handle routes on one
thread at a time (it holds one context); open one per thread.
"""
import ctypes
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
LIB_DEFAULT = os.path.normpath(os.path.join(HERE, "..", "build", "libtinyroute-host.so"))
ABI = 2  # TRH_ABI_VERSION this module speaks
ERR_BYTES = 1024
REC_OUTCOME = 16  # TR_LOG_REC_OUTCOME


class Error(Exception):
    """A refusal or failure, in the library's words."""


class LogInfo(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("flags", ctypes.c_uint32), ("dim", ctypes.c_uint32),
                ("n", ctypes.c_uint32), ("capacity", ctypes.c_uint32),
                ("record_bytes", ctypes.c_uint32), ("device_id", ctypes.c_uint64),
                ("first_id", ctypes.c_uint64), ("recorded", ctypes.c_uint64),
                ("dropped", ctypes.c_uint64), ("embedder_fp", ctypes.c_uint64)]


def _cache():
    # Per process, on sys: a Dask worker that gets this module again (a new
    # upload_file re-imports it) keeps working, and the key includes this
    # import's LogInfo (argtypes name one class; a stale one is refused).
    return sys.__dict__.setdefault("_tinyroute_py_cache", {})


def _err():
    return ctypes.create_string_buffer(ERR_BYTES)


def _msg(buf):
    return buf.value.decode("utf-8", errors="replace")


def _texts(prompts):
    """The prompts as UTF-8 (str or bytes) and the C arrays that point at them."""
    raw = [p.encode("utf-8") if isinstance(p, str) else bytes(p) for p in prompts]
    n = len(raw)
    arr = (ctypes.c_char_p * max(n, 1))(*raw)
    lens = (ctypes.c_size_t * max(n, 1))(*[len(b) for b in raw])
    return raw, arr, lens


class Library:
    """The host library, loaded once per process and path."""

    def __new__(cls, path=None):
        path = os.path.abspath(path or LIB_DEFAULT)
        c = _cache()
        key = ("lib", path, LogInfo)
        if key not in c:
            obj = super().__new__(cls)
            obj._load(path)
            c[key] = obj
        return c[key]

    def _load(self, path):
        self.path = path
        L = ctypes.CDLL(path)
        vp, cp, sz, u32, u64, f32 = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint32,
                                     ctypes.c_uint64, ctypes.c_float)
        L.trh_abi_version.restype = ctypes.c_int
        if L.trh_abi_version() != ABI:
            raise Error("%s: host library ABI %d, this module speaks %d" % (path, L.trh_abi_version(), ABI))
        L.trh_keys_load.argtypes = [cp, ctypes.c_int, cp, sz]
        L.trh_keys_load.restype = vp
        L.trh_keys_free.argtypes = [vp]
        L.trh_keys_take.argtypes = [vp, cp, u32, u64, u64, u32, ctypes.POINTER(u32), cp, sz]
        L.trh_log_open.argtypes = [cp, vp, ctypes.POINTER(LogInfo), cp, sz]
        L.trh_log_open.restype = vp
        L.trh_log_records.argtypes = [vp, u32, u32] + [vp] * 7
        L.trh_log_text.argtypes = [vp, u32, cp, sz]
        L.trh_log_embeddings.argtypes = [vp, u32, u32, vp]
        L.trh_log_close.argtypes = [vp]
        L.trh_fnv1a64.argtypes = [cp, sz]
        L.trh_fnv1a64.restype = u64
        L.trh_pack_open.argtypes = [cp, cp, ctypes.POINTER(cp), sz, cp, sz]
        L.trh_pack_open.restype = vp
        L.trh_pack_close.argtypes = [vp]
        L.trh_pack_info.argtypes = [vp, vp, vp, vp]
        L.trh_pack_model.argtypes = [vp, u32, cp, sz, vp, vp, vp]
        L.trh_route_batch.argtypes = [vp, vp, vp, sz, f32, u32, ctypes.c_int, vp, vp, vp, vp, cp, sz]
        L.trh_route_batch.restype = sz
        L.trh_embed_batch.argtypes = [vp, vp, vp, sz, vp, cp, sz]
        L.trh_embed_batch.restype = sz
        self.L = L

    def fnv1a64(self, s):
        b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
        return self.L.trh_fnv1a64(b, len(b))

    def load_keys(self, path, allow_v1=False):
        return Keys(self, path, allow_v1)

    def open_log(self, path, keys=None):
        return Log(self, path, keys)

    def open_pack(self, path, pubkeys, delta=None):
        return Pack(self, path, pubkeys, delta)


class _Handle:
    """A library handle freed once, by close(), `with`, or garbage collection;
    a subclass names its free function in _FREE."""

    _FREE = None

    def close(self):
        if getattr(self, "h", None):
            getattr(self.lib.L, self._FREE)(self.h)
            self.h = None

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def __del__(self):
        self.close()


class Keys(_Handle):
    """--device-keys FILE: the fleet's device keys, and a batch's replay state."""

    _FREE = "trh_keys_free"

    def __init__(self, lib, path, allow_v1=False):
        self.lib, e = lib, _err()
        self.h = lib.L.trh_keys_load(os.fsencode(path), int(bool(allow_v1)), e, ERR_BYTES)
        if not self.h:
            raise Error(_msg(e))

    def take(self, path, version, device_id, recorded, n):
        """The batch's replay rule for a log's header: records already taken
        (to skip), or Error (refused: a replay, ids running backwards)."""
        skip, e = ctypes.c_uint32(0), _err()
        if self.lib.L.trh_keys_take(self.h, os.fsencode(path), version, device_id, recorded, n,
                                    ctypes.byref(skip), e, ERR_BYTES):
            raise Error(_msg(e))
        return skip.value



class Log(_Handle):
    """An outcome log read and checked by tools/logfile.c (with keys: its
    device known, not revoked, its MAC verified), or Error."""

    _FREE = "trh_log_close"

    def __init__(self, lib, path, keys=None):
        self.lib, self.path, self.info, e = lib, path, LogInfo(), _err()
        self.h = lib.L.trh_log_open(os.fsencode(path), keys.h if keys else None, ctypes.byref(self.info),
                                    e, ERR_BYTES)
        if not self.h:
            raise Error(_msg(e))

    def __len__(self):
        return self.info.n

    def records(self, start=0, count=None):
        n = self.info.n - start if count is None else count
        out = dict(id=np.empty(n, np.uint64), model_hash=np.empty(n, np.uint64),
                   prompt_hash=np.empty(n, np.uint64), text_key=np.empty(n, np.uint64),
                   flags=np.empty(n, np.uint32), outcome=np.empty(n, np.float32),
                   cost=np.empty(n, np.float32))
        if n and self.lib.L.trh_log_records(self.h, start, n, *[out[k].ctypes.data for k in
                                                                 ("id", "model_hash", "prompt_hash",
                                                                  "text_key", "flags", "outcome", "cost")]):
            raise Error("%s: records %d..%d out of range" % (self.path, start, start + n - 1))
        return out

    def text(self, i):
        """Record i's kept text (bytes; at most 256 by the format), None without."""
        buf = ctypes.create_string_buffer(512)
        ln = self.lib.L.trh_log_text(self.h, i, buf, 512)
        if ln < 0:
            return None
        if ln > 512:
            buf = ctypes.create_string_buffer(ln)
            self.lib.L.trh_log_text(self.h, i, buf, ln)
        return buf.raw[:ln]

    def embeddings(self, start=0, count=None):
        n = self.info.n - start if count is None else count
        out = np.zeros((n, self.info.dim), np.int8)
        if n and self.lib.L.trh_log_embeddings(self.h, start, n, out.ctypes.data):
            raise Error("%s: no embeddings kept, or out of range" % self.path)
        return out



class Routes:
    """A batch's decisions: model (index), names (chosen model names),
    utility, nearest (cosine distance; NaN for cluster routing) and
    predicted (n x models: each model's predicted correctness)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


METHODS = {"knn": 0, "cluster": 1, "learned-map": 2}


class Pack(_Handle):
    """A pack (and delta) verified against the public keys, as `tinyroute
    route --pack P --key K [--delta D]` opens it; Error on refusal."""

    _FREE = "trh_pack_close"

    def __init__(self, lib, path, pubkeys, delta=None):
        if isinstance(pubkeys, (str, bytes, os.PathLike)):
            pubkeys = [pubkeys]
        self.lib, self.path, e = lib, path, _err()
        ks = (ctypes.c_char_p * max(1, len(pubkeys)))(*[os.fsencode(k) for k in pubkeys])
        self.h = lib.L.trh_pack_open(os.fsencode(path), os.fsencode(delta) if delta else None, ks,
                                     len(pubkeys), e, ERR_BYTES)
        if not self.h:
            raise Error(_msg(e))
        d, r, m = ctypes.c_uint32(), ctypes.c_uint32(), ctypes.c_uint32()
        lib.L.trh_pack_info(self.h, ctypes.byref(d), ctypes.byref(r), ctypes.byref(m))
        self.dim, self.n_refs, self.n_models = d.value, r.value, m.value
        self.models = []
        for j in range(self.n_models):
            name, cost, cn, where = ctypes.create_string_buffer(256), ctypes.c_float(), ctypes.c_float(), \
                ctypes.c_int()
            lib.L.trh_pack_model(self.h, j, name, 256, ctypes.byref(cost), ctypes.byref(cn), ctypes.byref(where))
            self.models.append(dict(name=name.value.decode("utf-8"), cost=cost.value, cost_norm=cn.value,
                                    where="device" if where.value == 0 else "cloud"))

    def route(self, prompts, lam=None, k=0, method="knn"):
        """Route prompts (str or UTF-8 bytes). lam None: the pack's lambda;
        0: no cost weight; > 0: that weight (route --lambda). k 0: the
        pack's. Error names the first prompt the library refused."""
        raw, arr, lens = _texts(prompts)
        n, m = len(raw), self.n_models
        model = np.zeros(n, np.uint32)
        util = np.zeros(n, np.float32)
        near = np.zeros(n, np.float32)
        pred = np.zeros((n, m), np.float32)
        e = _err()
        done = self.lib.L.trh_route_batch(self.h, arr, lens, n, -1.0 if lam is None else float(lam), k,
                                          METHODS[method], model.ctypes.data, util.ctypes.data,
                                          near.ctypes.data, pred.ctypes.data, e, ERR_BYTES)
        if done != n:
            raise Error(_msg(e))
        return Routes(model=model, names=[self.models[i]["name"] for i in model.tolist()], utility=util,
                      nearest=near, predicted=pred)

    def embed(self, prompts):
        """The built-in int8 embeddings, (n, dim), as `tinyroute embed`."""
        raw, arr, lens = _texts(prompts)
        out = np.zeros((len(raw), self.dim), np.int8)
        e = _err()
        if self.lib.L.trh_embed_batch(self.h, arr, lens, len(raw), out.ctypes.data, e, ERR_BYTES) != len(raw):
            raise Error(_msg(e))
        return out

