import Hummingbird
import ArgumentParser
import ServiceLifecycle
import WatchPartyCore
import Transport
import Observability
print("hi")
