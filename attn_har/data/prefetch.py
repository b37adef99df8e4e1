"""Device prefetch with a checkpointable state.

`DevicePrefetch` wraps a Grain `DataLoaderIterator`: a background thread pulls the next `size` batches,
`jax.device_put`s them (optionally with a sharding) and queues them together with the inner iterator's state
*after* each batch. `get_state()` therefore describes exactly the batches the caller has consumed, not those
read ahead, and `set_state()` drops the read-ahead and repositions the inner iterator. The methods match
what `grain.checkpoint.CheckpointHandler` calls (get_state -> bytes, set_state(bytes), start_prefetch), so the
wrapper is saved and restored by Orbax like a bare Grain iterator.

With `size=0` there is no thread: batches are produced on demand (still device_put unless `to_device=False`).
"""

import queue
import threading
from typing import Any, Iterator, Optional

_DONE = object()


class DevicePrefetch:
  """Iterator over batches prefetched onto device(s).

  Attributes:
    size: batches kept ready ahead of the consumer (0 = synchronous).
    sharding: a `jax.sharding.Sharding` (or pytree of them) for `jax.device_put`; None = default device.
    to_device: False returns the numpy batches untouched (tests, CPU-only tools).
  """

  def __init__(self, iterator: Iterator, size: int = 2, sharding: Optional[Any] = None, to_device: bool = True,
               length: Optional[int] = None):
    if size < 0:
      raise ValueError(f"prefetch size must be >= 0, got {size}")
    self._it = iterator
    self.size, self.sharding, self.to_device = size, sharding, to_device
    self._length = length
    self._state = iterator.get_state()
    self._queue = None
    self._thread = None
    self._stop = threading.Event()
    self._stale = False  # the inner iterator ran ahead of `_state` (a closed thread's read-ahead)

  def __iter__(self):
    return self

  def __len__(self) -> int:
    if self._length is None:
      raise TypeError("this iterator is unbounded (num_epochs=None); it has no length")
    return self._length

  def _put(self, batch):
    if not self.to_device:
      return batch
    import jax  # pylint: disable=g-import-not-at-top  (kept out of Grain worker processes)
    return jax.device_put(batch, self.sharding) if self.sharding is not None else jax.device_put(batch)

  def _produce(self, q: queue.Queue, stop: threading.Event):
    try:
      while not stop.is_set():
        try:
          batch = next(self._it)
        except StopIteration:
          item = (_DONE, None)
        else:
          item = (self._put(batch), self._it.get_state())
        while not stop.is_set():
          try:
            q.put(item, timeout=0.1)
            break
          except queue.Full:
            continue
        if item[0] is _DONE:
          return
    except BaseException as e:  # handed to the consumer, raised there
      q.put((e, None))

  def start_prefetch(self):
    """Starts the background thread (idempotent; no-op when size == 0)."""
    if self.size and self._thread is None:
      if self._stale:
        self._it.set_state(self._state)
        self._stale = False
      self._stop = threading.Event()
      self._queue = queue.Queue(maxsize=self.size)
      self._thread = threading.Thread(target=self._produce, args=(self._queue, self._stop), daemon=True,
                                      name="device-prefetch")
      self._thread.start()

  def __next__(self):
    if not self.size:
      batch = next(self._it)
      self._state = None  # read lazily from the inner iterator: nothing is read ahead
      return self._put(batch)
    self.start_prefetch()
    batch, state = self._queue.get()
    if batch is _DONE:
      self._queue.put((_DONE, None))  # stay exhausted
      raise StopIteration
    if isinstance(batch, BaseException):
      raise batch
    self._state = state
    return batch

  def _stop_thread(self):
    """Stops the thread and drops read-ahead batches; a later `__next__` resumes after the last consumed one."""
    if self._thread is not None:
      self._stop.set()
      while self._thread.is_alive():
        try:
          self._queue.get(timeout=0.05)
        except queue.Empty:
          pass
      self._thread.join()
      self._thread, self._queue = None, None
      self._stale = True

  def get_state(self) -> bytes:
    """State after the last batch returned by `__next__` (bytes, as Grain's DataLoaderIterator)."""
    return self._it.get_state() if self._state is None else self._state

  def set_state(self, state: bytes):
    """Repositions to `state`; read-ahead batches are discarded."""
    self._stop_thread()
    self._it.set_state(state)
    self._state = state
    self._stale = False

  def close(self):
    """Stops the thread and releases the inner iterator's worker processes and shared memory."""
    self._stop_thread()
    inner = getattr(self._it, "close", None) or getattr(getattr(self._it, "_iterator", None), "close", None)
    if inner is not None:
      inner()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  def __del__(self):
    try:
      self._stop_thread()
    except Exception:  # pylint: disable=broad-except  (interpreter shutdown)
      pass
