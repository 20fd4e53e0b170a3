"""Specialized workers: a subclass that only takes image tasks.

From the workers guide, section "Advanced Worker Patterns / Specialized Workers". A task the
worker declines stays in the queue for other workers; this worker does not claim it again.
"""

import sitq
from sitq import SQLiteBackend, SyncTaskQueue


def resize_image(path, width):
    return f"{path} resized to {width}px"


def send_email(to):
    return f"email sent to {to}"


# Worker for specific task types
class ImageProcessingWorker(sitq.Worker):
    """Worker specialized for image processing tasks."""

    def __init__(self, queue):
        super().__init__(queue)
        self.supported_functions = ["resize_image", "filter_image", "convert_image"]

    def should_process_task(self, task):
        """Check if worker should process this task."""
        return task.function.__name__ in self.supported_functions

    def process_task(self, task_id):
        """Process only supported tasks."""
        task = self.queue.get_task(task_id)
        if not self.should_process_task(task):
            return sitq.Result(is_error=True, error="Task type not supported by this worker")
        return super().process_task(task_id)


if __name__ == "__main__":
    queue = SyncTaskQueue(SQLiteBackend(":memory:"))

    # Use specialized worker
    worker = ImageProcessingWorker(queue)

    image = queue.enqueue(resize_image, "cat.png", 200)
    email = queue.enqueue(send_email, "ann@example.com")
    print(worker.process_task(image).value)
    print(worker.process_task(email).error)

    # Running, it leaves the email task for a general worker
    worker.start()
    second = queue.enqueue(resize_image, "dog.png", 100)
    print(queue.get_result(second, timeout=10).value)
    worker.stop()
    print(f"Email task: {queue.get_task(email).status.value}")
    general = sitq.Worker(queue)
    print(general.process_task(email).value)
    queue.close()
