using System.Diagnostics;
using System.Globalization;
using System.Xml.Linq;

namespace ClipSharp.Tests.Packaging;

/// <summary>
/// What the packaging tests share: <c>dotnet pack</c> of library projects into a folder feed, a console app outside the
/// repository restoring from it into its own package folder, and running dotnet as a child process.
/// </summary>
internal static class PackageApp
{
    /// <summary>A version no other run has used, so no package cache can hand back an older build.</summary>
    public static string UniqueVersion() =>
        "0.0.0-test." + DateTime.UtcNow.ToString("yyyyMMddHHmmssfff", CultureInfo.InvariantCulture) + "." + Environment.ProcessId;

    /// <summary>The configuration the tests were built in (the libraries were built with them).</summary>
    public static string Configuration => AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Debug{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Debug" : "Release";

    /// <summary>Packs src/<paramref name="project"/> into <paramref name="feed"/> without rebuilding it (pack only wraps the tests' build output).</summary>
    public static void Pack(string repo, string project, string feed, string version)
    {
        Dotnet(repo, null, "pack", Path.Combine(repo, "src", project, project + ".csproj"), "--no-build", "-c", Configuration,
            "-o", feed, $"-p:PackageVersion={version}", "-nologo");
        Assert.True(File.Exists(Path.Combine(feed, $"{project}.{version}.nupkg")), $"dotnet pack made no {project} package");
    }

    /// <summary>
    /// A nuget.config in <paramref name="dir"/>: its own package folder (nothing of a test lands in the user's cache), the
    /// user's cache as a read-only fallback for the third-party packages the repository's build restored already, the
    /// feed, and nuget.org for what is in neither.
    /// </summary>
    public static void WriteNugetConfig(string dir, string feed)
    {
        string userPackages = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p
            ? p : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var config = new XElement("configuration",
            new XElement("config", new XElement("add", new XAttribute("key", "globalPackagesFolder"), new XAttribute("value", Path.Combine(dir, "packages")))),
            new XElement("fallbackPackageFolders", new XElement("add", new XAttribute("key", "user"), new XAttribute("value", userPackages))),
            new XElement("packageSources", new XElement("clear"),
                new XElement("add", new XAttribute("key", "local"), new XAttribute("value", feed)),
                new XElement("add", new XAttribute("key", "nuget.org"), new XAttribute("value", "https://api.nuget.org/v3/index.json"))));
        config.Save(Path.Combine(dir, "nuget.config"));
    }

    /// <summary>Writes DIR/NAME.csproj: a net10.0 console app (nullable, implicit usings) referencing one package of ours.</summary>
    public static void WriteProject(string dir, string name, string package, string version) =>
        File.WriteAllText(Path.Combine(dir, name + ".csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <Nullable>enable</Nullable>
                <ImplicitUsings>enable</ImplicitUsings>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="{package}" Version="{version}" />
              </ItemGroup>
            </Project>
            """);

    /// <summary>
    /// Runs dotnet and returns its standard output; a non-zero exit fails the test with everything it printed.
    /// <paramref name="environment"/> sets (or, with a null value, removes) variables of the child.
    /// </summary>
    public static string Dotnet(string workingDirectory, IReadOnlyDictionary<string, string?>? environment, params string[] args)
    {
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";
        var psi = new ProcessStartInfo(dotnet) { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        // The outer `dotnet test` sets MSBuild variables for its own build; the child builds a project of its own.
        foreach (var v in new[] { "MSBuildExtensionsPath", "MSBuildSDKsPath", "MSBUILD_EXE_PATH", "DOTNET_CLI_TELEMETRY_SESSIONID" }) psi.Environment.Remove(v);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        foreach (var (k, v) in environment ?? new Dictionary<string, string?>())
            if (v is null) psi.Environment.Remove(k); else psi.Environment[k] = v;
        using var process = Process.Start(psi)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        // A guard against a hung child only; the test's outcome is what the child printed and its exit code.
        if (!process.WaitForExit(TimeSpan.FromMinutes(10))) { process.Kill(entireProcessTree: true); Assert.Fail($"dotnet {string.Join(' ', args)} did not finish"); }
        Assert.True(process.ExitCode == 0, $"dotnet {string.Join(' ', args)} exited with {process.ExitCode}:\n{stdout}\n{stderr.Result}");
        return stdout;
    }

    public static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "ClipSharp.slnx"))) return dir.FullName;
        throw new DirectoryNotFoundException("Cannot find the repository root (ClipSharp.slnx) above " + AppContext.BaseDirectory);
    }
}
