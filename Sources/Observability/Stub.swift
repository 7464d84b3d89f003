import Prometheus
public enum ObservabilityStub {}
