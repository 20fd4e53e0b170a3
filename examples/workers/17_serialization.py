"""Custom serialization: the worker decodes payloads and encodes results with pickle.

From the workers guide, section "Advanced Worker Patterns / Worker with Custom Serialization".
The queue stores tasks with cloudpickle (its default), whose output pickle reads, and reads
results back with it, which reads what pickle writes: the worker checks that pairing when it is
built.
"""

import pickle

import sitq
from sitq import SQLiteBackend, SyncTaskQueue
from sitq.errors import ConfigurationError


def summarize(numbers):
    return {"count": len(numbers), "total": sum(numbers)}


if __name__ == "__main__":
    queue = SyncTaskQueue(SQLiteBackend(":memory:"))

    # Worker with custom serialization
    worker = sitq.Worker(
        queue=queue,
        serializer=pickle,  # Custom serializer
        deserializer=pickle,  # Custom deserializer
    )

    task_id = queue.enqueue(summarize, [1, 2, 3, 4])
    worker.process_task(task_id)
    print(f"Result read back by the queue: {queue.get_result(task_id, timeout=0).value}")

    # A serializer without dumps()/loads() is refused when the worker is built
    try:
        sitq.Worker(queue=queue, serializer=object())
    except ConfigurationError as exc:
        print(f"ConfigurationError: {str(exc)[:60]}...")
    queue.close()
