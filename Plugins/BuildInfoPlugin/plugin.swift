import Foundation
import PackagePlugin

/// Generates `GeneratedBuildInfo.swift` for the server: the git revision it was built from
/// (`OWP_BUILD_REVISION` wins, for builds without a .git, such as the container image), and an
/// optional version override (`OWP_BUILD_VERSION`). Reruns when the checked-out commit moves.
@main
struct BuildInfoPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) async throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appending(path: "GeneratedBuildInfo.swift")
        let root = context.package.directoryURL
        let environment = ProcessInfo.processInfo.environment
        var arguments = [output.path(percentEncoded: false), root.path(percentEncoded: false)]
        arguments.append(environment["OWP_BUILD_REVISION"] ?? "")
        arguments.append(environment["OWP_BUILD_VERSION"] ?? "")
        return [
            .buildCommand(
                displayName: "Writing build information",
                executable: try context.tool(named: "BuildInfoGenerator").url,
                arguments: arguments,
                inputFiles: Self.gitInputs(root: root),
                outputFiles: [output]
            )
        ]
    }

    /// The files whose change means another commit is checked out.
    static func gitInputs(root: URL) -> [URL] {
        let git = root.appending(path: ".git")
        let head = git.appending(path: "HEAD")
        var inputs: [URL] = []
        guard let text = try? String(contentsOf: head, encoding: .utf8) else { return inputs }
        inputs.append(head)
        if text.hasPrefix("ref: ") {
            let ref = git.appending(path: text.dropFirst(5).trimmingCharacters(in: .whitespacesAndNewlines))
            if FileManager.default.fileExists(atPath: ref.path(percentEncoded: false)) { inputs.append(ref) }
        }
        let packed = git.appending(path: "packed-refs")
        if FileManager.default.fileExists(atPath: packed.path(percentEncoded: false)) { inputs.append(packed) }
        return inputs
    }
}
