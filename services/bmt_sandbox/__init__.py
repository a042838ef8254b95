"""A local stand-in for the VNPay and MoMo payment gateways, for development and tests."""
