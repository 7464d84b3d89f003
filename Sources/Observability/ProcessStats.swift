import Foundation

/// This process's resources, from /proc (Linux), with the standard Prometheus process metric
/// meanings (`process_*`, as the official client libraries export them).
public struct ProcessStats: Sendable {
    public var residentBytes: Int
    public var virtualBytes: Int
    public var openFDs: Int
    public var maxFDs: Int
    /// User plus system CPU time since the process started, in seconds.
    public var cpuSeconds: Double

    public static func read() -> ProcessStats {
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        var stats = ProcessStats(residentBytes: 0, virtualBytes: 0, openFDs: 0, maxFDs: 0, cpuSeconds: 0)
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) {
            let fields = statm.split(separator: " ")
            if fields.count > 1, let size = Int(fields[0]), let resident = Int(fields[1]) {
                stats.virtualBytes = size * pageSize
                stats.residentBytes = resident * pageSize
            }
        }
        stats.cpuSeconds = cpuSeconds() ?? 0
        stats.openFDs = openDescriptors() ?? 0
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            stats.maxFDs = limit.rlim_cur > UInt(Int.max) ? Int.max : Int(limit.rlim_cur)
        }
        return stats
    }

    /// User plus system CPU seconds of `process` (a pid, or `self`), from /proc.
    public static func cpuSeconds(process: String = "self") -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(process)/stat", encoding: .utf8),
            let end = stat.range(of: ")", options: .backwards)
        else { return nil }
        // After "pid (comm)": field 3 is state; utime and stime are fields 14 and 15.
        let fields = stat[end.upperBound...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Open descriptors of `process` (a pid, or `self`).
    public static func openDescriptors(process: String = "self") -> Int? {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(process)/fd"))?.count
    }
}
