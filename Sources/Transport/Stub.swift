import Hummingbird
import HummingbirdWebSocket
import HummingbirdWSCompression
public enum TransportStub {}
