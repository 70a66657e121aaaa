using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace ClipSharp.Data.Demo;

/// <summary>A source package the corpus was built from, as recorded in the manifest.</summary>
/// <param name="Name">Package name.</param>
/// <param name="Version">Exact version (Debian version with epoch, or npm version).</param>
/// <param name="Kind"><c>deb</c> or <c>npm</c>.</param>
/// <param name="License">Licence short name(s), from the Debian copyright file or the npm <c>license</c> field.</param>
/// <param name="Sha256">SHA-256 of the downloaded archive (hex).</param>
internal sealed record SourcePackage(string Name, string Version, string Kind, string License, string Sha256);

/// <summary>A failure of the demo corpus build that the user can act on (missing tool, failed download, bad cache).</summary>
internal sealed class DemoCorpusException(string message) : ClipSharpException(message);

/// <summary>Licence detection from Debian <c>copyright</c> files.</summary>
internal static class DebianCopyright
{
    /// <summary>
    /// Returns the licence of a package's files. For a machine-readable (DEP-5) file: the distinct <c>License:</c>
    /// names of the <c>Files:</c> stanzas other than <c>debian/*</c>, joined with " AND ". For a free-form file: a
    /// few well-known phrases, else <c>see copyright file</c>.
    /// </summary>
    public static string License(string text)
    {
        var names = new List<string>();
        if (text.StartsWith("Format:", StringComparison.Ordinal))
        {
            foreach (var stanza in Regex.Split(text.Replace("\r", ""), @"\n\s*\n"))
            {
                var files = Regex.Match(stanza, @"^Files:\s*(.+)$", RegexOptions.Multiline);
                var license = Regex.Match(stanza, @"^License:[ \t]*(\S.*)$", RegexOptions.Multiline);
                if (!files.Success || !license.Success) continue;
                if (files.Groups[1].Value.Trim().StartsWith("debian/", StringComparison.Ordinal)) continue;
                var name = license.Groups[1].Value.Trim();
                if (!names.Contains(name)) names.Add(name);
            }
            if (names.Count > 0) return string.Join(" AND ", names);
        }
        if (text.Contains("Public Domain", StringComparison.OrdinalIgnoreCase)) return "public-domain";
        if (text.Contains("UNICODE, INC. LICENSE AGREEMENT", StringComparison.Ordinal)) return "Unicode-DFS";
        if (text.Contains("free for any use", StringComparison.OrdinalIgnoreCase)) return "free-for-any-use (see copyright file)";
        return "see copyright file";
    }
}

/// <summary>
/// Downloads and unpacks source packages into a cache folder: Debian packages with <c>apt-get download</c> and
/// <c>dpkg-deb -x</c>, npm packages with <c>npm pack</c>. Each archive is checked against its expected SHA-256
/// (apt's index) or SRI integrity (pinned) before use; each unpacked tree is written under a temporary name and
/// renamed when complete, with a marker file holding the package record.
/// </summary>
internal sealed class PackageCache(string cacheDir, Action<string> log)
{
    private const string Marker = ".clipsharp-complete.json";
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    /// <summary>Folder of downloaded archives.</summary>
    public string DownloadDir => Path.Combine(cacheDir, "downloads");

    /// <summary>Folder of unpacked packages, one sub-folder per package.</summary>
    public string ExtractDir => Path.Combine(cacheDir, "extracted");

    /// <summary>Ensures a Debian package is unpacked; returns its root folder and record.</summary>
    public (string Root, SourcePackage Package) Deb(string name)
    {
        var root = Path.Combine(ExtractDir, name);
        if (TryReadMarker(root) is { } done) return (root, done);

        RequireTool("apt-get", "--version", "apt-get is needed to download Debian packages (run on Debian/Ubuntu)");
        RequireTool("dpkg-deb", "--version", "dpkg-deb (package dpkg) is needed to unpack Debian packages");
        var show = Run("apt-cache", ["show", "--no-all-versions", name], null, $"apt-cache does not know package {name}: run 'apt-get update' first");
        string Field(string f) => Regex.Match(show, $@"^{f}:\s*(.+)$", RegexOptions.Multiline) is { Success: true } m ? m.Groups[1].Value.Trim()
            : throw new DemoCorpusException($"apt-cache show {name} has no {f} field");
        var version = Field("Version");
        var sha = Field("SHA256").ToLowerInvariant();
        var fileName = Path.GetFileName(Field("Filename"));

        Directory.CreateDirectory(DownloadDir);
        var deb = Path.Combine(DownloadDir, fileName);
        if (File.Exists(deb) && Sha256(deb) != sha)
        {
            log($"  {fileName}: incomplete or corrupt download, fetching again");
            File.Delete(deb);
        }
        if (!File.Exists(deb))
        {
            log($"  downloading {name} {version}");
            var tmp = Path.Combine(DownloadDir, ".tmp-" + name);
            if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
            Directory.CreateDirectory(tmp);
            Run("apt-get", ["download", "-q", "-o", "APT::Sandbox::User=root", $"{name}={version}"], tmp, $"apt-get download {name}={version} failed");
            var got = Directory.GetFiles(tmp, "*.deb").SingleOrDefault() ?? throw new DemoCorpusException($"apt-get download {name} produced no .deb");
            if (Sha256(got) != sha) throw new DemoCorpusException($"{name}: downloaded file does not match the SHA-256 in apt's index");
            File.Move(got, deb, true);
            Directory.Delete(tmp, true);
        }

        var staging = Path.Combine(ExtractDir, ".tmp-" + name);
        if (Directory.Exists(staging)) Directory.Delete(staging, true);
        if (Directory.Exists(root)) Directory.Delete(root, true);
        Directory.CreateDirectory(staging);
        log($"  unpacking {fileName}");
        Run("dpkg-deb", ["-x", deb, staging], null, $"dpkg-deb could not unpack {deb}");
        var copyright = Path.Combine(staging, "usr", "share", "doc", name, "copyright");
        var license = File.Exists(copyright) ? DebianCopyright.License(File.ReadAllText(copyright)) : "unknown (no copyright file)";
        var package = new SourcePackage(name, version, "deb", license, sha);
        File.WriteAllText(Path.Combine(staging, Marker), JsonSerializer.Serialize(package, Json));
        Directory.Move(staging, root);
        return (root, package);
    }

    /// <summary>Ensures a pinned npm package is unpacked (its files are under <c>package/</c> in the root).</summary>
    public (string Root, SourcePackage Package) Npm(string name, string version, string integrity)
    {
        var root = Path.Combine(ExtractDir, $"npm-{name}");
        if (TryReadMarker(root) is { } done && done.Version == version) return (root, done);

        Directory.CreateDirectory(DownloadDir);
        var tgz = Path.Combine(DownloadDir, $"{name}-{version}.tgz");
        if (File.Exists(tgz) && Integrity(tgz) != integrity)
        {
            log($"  {Path.GetFileName(tgz)}: incomplete or corrupt download, fetching again");
            File.Delete(tgz);
        }
        if (!File.Exists(tgz))
        {
            RequireTool("npm", "--version", $"npm is needed to download the {name} package (apt-get install npm)");
            log($"  downloading npm {name}@{version}");
            var tmp = Path.Combine(DownloadDir, ".tmp-npm-" + name);
            if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
            Directory.CreateDirectory(tmp);
            Run("npm", ["pack", "--silent", $"{name}@{version}"], tmp, $"npm pack {name}@{version} failed");
            var got = Directory.GetFiles(tmp, "*.tgz").SingleOrDefault() ?? throw new DemoCorpusException($"npm pack {name} produced no .tgz");
            if (Integrity(got) != integrity) throw new DemoCorpusException($"{name}@{version}: downloaded tarball does not match the pinned integrity {integrity}");
            File.Move(got, tgz, true);
            Directory.Delete(tmp, true);
        }

        var staging = Path.Combine(ExtractDir, ".tmp-npm-" + name);
        if (Directory.Exists(staging)) Directory.Delete(staging, true);
        if (Directory.Exists(root)) Directory.Delete(root, true);
        Directory.CreateDirectory(staging);
        log($"  unpacking {Path.GetFileName(tgz)}");
        using (var file = File.OpenRead(tgz))
        using (var gz = new GZipStream(file, CompressionMode.Decompress))
            TarFile.ExtractToDirectory(gz, staging, overwriteFiles: true);
        using var pkgJson = JsonDocument.Parse(File.ReadAllText(Path.Combine(staging, "package", "package.json")));
        var license = pkgJson.RootElement.TryGetProperty("license", out var l) && l.ValueKind == JsonValueKind.String ? l.GetString()! : "unknown";
        var actualVersion = pkgJson.RootElement.GetProperty("version").GetString() ?? version;
        var package = new SourcePackage(name, actualVersion, "npm", license, Sha256(tgz));
        File.WriteAllText(Path.Combine(staging, Marker), JsonSerializer.Serialize(package, Json));
        Directory.Move(staging, root);
        return (root, package);
    }

    private static SourcePackage? TryReadMarker(string root)
    {
        var marker = Path.Combine(root, Marker);
        if (!File.Exists(marker)) return null;
        try { return JsonSerializer.Deserialize<SourcePackage>(File.ReadAllText(marker)); }
        catch (JsonException) { return null; }
    }

    /// <summary>Lower-case hex SHA-256 of a file.</summary>
    public static string Sha256(string path)
    {
        using var s = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(s));
    }

    /// <summary>npm's SRI integrity string (<c>sha512-BASE64</c>) of a file.</summary>
    public static string Integrity(string path)
    {
        using var s = File.OpenRead(path);
        return "sha512-" + Convert.ToBase64String(SHA512.HashData(s));
    }

    /// <summary>Checks that a tool runs; throws a <see cref="DemoCorpusException"/> with <paramref name="hint"/> otherwise.</summary>
    public static void RequireTool(string tool, string versionArg, string hint)
    {
        try { Run(tool, [versionArg], null, hint); }
        catch (DemoCorpusException) { throw new DemoCorpusException(hint); }
    }

    /// <summary>Runs a process to completion and returns its standard output; a failure becomes a <see cref="DemoCorpusException"/>.</summary>
    public static string Run(string file, IEnumerable<string> args, string? workDir, string errorMessage)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (workDir is not null) psi.WorkingDirectory = workDir;
        Process process;
        try { process = Process.Start(psi) ?? throw new DemoCorpusException($"{errorMessage}: could not start {file}"); }
        catch (System.ComponentModel.Win32Exception) { throw new DemoCorpusException($"{errorMessage}: {file} is not installed"); }
        using (process)
        {
            var stderr = process.StandardError.ReadToEndAsync();
            var stdout = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0)
            {
                var detail = stderr.Result.Trim();
                if (detail.Length > 400) detail = detail[..400];
                throw new DemoCorpusException($"{errorMessage} (exit {process.ExitCode}){(detail.Length > 0 ? ": " + detail : "")}");
            }
            return stdout;
        }
    }
}
