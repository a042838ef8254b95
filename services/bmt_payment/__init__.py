"""The payment service: payments through VNPay and MoMo, their callbacks and refunds."""
