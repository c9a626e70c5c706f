"""The physics: Hessian-vector products and eigen-solvers, the critical constants, the uv model, the losses.

Functions on tensors, arrays and data frames only: nothing here imports Lightning or MLflow.
"""
