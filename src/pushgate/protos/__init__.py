"""Protocol buffer messages pushgate reads and writes, generated from the ``.proto`` files here.

The ``.proto`` files carry the published packages, message names, field names and numbers of
``tensorflow/core/example/{example,feature}.proto``, ``tensorflow/core/framework/tensor.proto``
and ``tensorflow_serving/apis/{prediction_log,predict,model}.proto``, stripped to the messages
pushgate needs (each file says what it leaves out; left-out fields survive a parse and a
serialize as unknown fields). ``scripts/gen_protos.py`` regenerates the ``*_pb2`` modules with
grpcio-tools, in the form that works with protobuf 3.20 and later, in a private descriptor pool.
Importing a ``*_pb2`` module needs the ``protobuf`` package; ``import pushgate`` does not.
"""
