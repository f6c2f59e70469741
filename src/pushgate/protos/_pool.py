"""pushgate's own descriptor pool: its messages never clash with TensorFlow's in one process."""

from google.protobuf import descriptor_pool

POOL = descriptor_pool.DescriptorPool()
