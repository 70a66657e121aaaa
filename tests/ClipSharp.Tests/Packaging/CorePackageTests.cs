using System.Diagnostics;
using System.Globalization;
using System.Xml.Linq;
using ClipSharp.Imaging;
using ClipSharp.Text;

namespace ClipSharp.Tests.Packaging;

/// <summary>
/// ClipSharp.Core is the layer a backend without libtorch reuses: a console app outside the repository that restores
/// only the ClipSharp.Core package (from a folder feed made by <c>dotnet pack</c>) tokenizes and preprocesses an image,
/// gets the same ids and pixels as the library in this process, never loads TorchSharp, and has no TorchSharp or
/// libtorch file in its output folder.
/// </summary>
public class CorePackageTests
{
    const string Text = "a photo of a cat.";

    [Fact]
    public void AnAppReferencingOnlyTheCorePackageTokenizesAndPreprocessesWithoutLibtorch()
    {
        string repo = RepositoryRoot();
        string vocab = Golden.Path("bpe_simple_vocab_16e6.txt.gz");
        string image = Golden.Path("preprocess", "landscape.jpg");
        var work = Directory.CreateTempSubdirectory("clipsharp-corepkg-");
        try
        {
            // A version no other run has used, so no package cache can hand back an older build.
            string version = "0.0.0-test." + DateTime.UtcNow.ToString("yyyyMMddHHmmssfff", CultureInfo.InvariantCulture) + "." + Environment.ProcessId;
            string feed = Directory.CreateDirectory(Path.Combine(work.FullName, "feed")).FullName;
            string configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Debug{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Debug" : "Release";
            // --no-build: the Core project was built with the tests; pack only wraps that output.
            Dotnet(repo, "pack", Path.Combine(repo, "src", "ClipSharp.Core", "ClipSharp.Core.csproj"), "--no-build", "-c", configuration,
                "-o", feed, $"-p:PackageVersion={version}", "-nologo");
            Assert.True(File.Exists(Path.Combine(feed, $"ClipSharp.Core.{version}.nupkg")), "dotnet pack made no ClipSharp.Core package");

            string app = Directory.CreateDirectory(Path.Combine(work.FullName, "app")).FullName;
            WriteApp(app, feed, version);
            Dotnet(app, "build", "-c", "Release", "-nologo", "-o", Path.Combine(app, "out"));
            string output = Path.Combine(app, "out");

            var torchFiles = Directory.EnumerateFiles(output, "*", SearchOption.AllDirectories)
                .Select(f => Path.GetRelativePath(output, f))
                .Where(f => f.Contains("torch", StringComparison.OrdinalIgnoreCase) || f.Contains("YamlDotNet", StringComparison.Ordinal)
                            || f.Contains("ScottPlot", StringComparison.Ordinal) || f.Contains("HarfBuzz", StringComparison.Ordinal))
                .ToList();
            Assert.True(torchFiles.Count == 0, "the Core-only app's output holds: " + string.Join(", ", torchFiles));
            Assert.True(File.Exists(Path.Combine(output, "ClipSharp.Core.dll")));

            string printed = Dotnet(output, Path.Combine(output, "coreapp.dll"), vocab, image).Trim();

            var tok = VocabularyLocator.Load(vocab);
            int[] ids = tok.Tokenize(Text);
            float[] pixels = new ClipImagePreprocessor(224).Process(image);
            string expected = string.Join("\n",
                string.Join(",", ids),
                $"{pixels.Length} {Checksum(pixels)}",
                "torchsharp loaded: False");
            Assert.Equal(expected, printed.ReplaceLineEndings("\n"));
        }
        finally
        {
            try { work.Delete(recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>Order-dependent and bit-exact: the same floats in the same order give the same text.</summary>
    static string Checksum(float[] values)
    {
        double sum = 0;
        for (int i = 0; i < values.Length; i++) sum += values[i] * (double)((i % 97) + 1);
        return sum.ToString("R", CultureInfo.InvariantCulture);
    }

    static void WriteApp(string dir, string feed, string version)
    {
        string userPackages = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p
            ? p : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        // Own package folder (nothing of this test lands in the user's cache); the user's cache as a read-only fallback
        // for SkiaSharp, which the repository's own build has restored already; nuget.org if it has not.
        var config = new XElement("configuration",
            new XElement("config", new XElement("add", new XAttribute("key", "globalPackagesFolder"), new XAttribute("value", Path.Combine(dir, "packages")))),
            new XElement("fallbackPackageFolders", new XElement("add", new XAttribute("key", "user"), new XAttribute("value", userPackages))),
            new XElement("packageSources", new XElement("clear"),
                new XElement("add", new XAttribute("key", "local"), new XAttribute("value", feed)),
                new XElement("add", new XAttribute("key", "nuget.org"), new XAttribute("value", "https://api.nuget.org/v3/index.json"))));
        config.Save(Path.Combine(dir, "nuget.config"));
        File.WriteAllText(Path.Combine(dir, "coreapp.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <Nullable>enable</Nullable>
                <ImplicitUsings>enable</ImplicitUsings>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="ClipSharp.Core" Version="{version}" />
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(dir, "Program.cs"), $$"""
            using System.Globalization;
            using ClipSharp.Imaging;
            using ClipSharp.Text;

            var tokenizer = VocabularyLocator.Load(args[0]);
            Console.WriteLine(string.Join(",", tokenizer.Tokenize("{{Text}}")));
            float[] pixels = new ClipImagePreprocessor(224).Process(args[1]);
            double sum = 0;
            for (int i = 0; i < pixels.Length; i++) sum += pixels[i] * (double)((i % 97) + 1);
            Console.WriteLine($"{pixels.Length} {sum.ToString("R", CultureInfo.InvariantCulture)}");
            bool torch = AppDomain.CurrentDomain.GetAssemblies().Any(a => a.GetName().Name!.StartsWith("TorchSharp", StringComparison.OrdinalIgnoreCase));
            Console.WriteLine($"torchsharp loaded: {torch}");
            """);
    }

    /// <summary>Runs dotnet and returns its standard output; a non-zero exit fails the test with everything it printed.</summary>
    static string Dotnet(string workingDirectory, params string[] args)
    {
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";
        var psi = new ProcessStartInfo(dotnet) { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        // The outer `dotnet test` sets MSBuild variables for its own build; the child builds a project of its own.
        foreach (var v in new[] { "MSBuildExtensionsPath", "MSBuildSDKsPath", "MSBUILD_EXE_PATH", "DOTNET_CLI_TELEMETRY_SESSIONID" }) psi.Environment.Remove(v);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        using var process = Process.Start(psi)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        // A guard against a hung child only; the test's outcome is what the child printed and its exit code.
        if (!process.WaitForExit(TimeSpan.FromMinutes(10))) { process.Kill(entireProcessTree: true); Assert.Fail($"dotnet {string.Join(' ', args)} did not finish"); }
        Assert.True(process.ExitCode == 0, $"dotnet {string.Join(' ', args)} exited with {process.ExitCode}:\n{stdout}\n{stderr.Result}");
        return stdout;
    }

    static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "ClipSharp.slnx"))) return dir.FullName;
        throw new DirectoryNotFoundException("Cannot find the repository root (ClipSharp.slnx) above " + AppContext.BaseDirectory);
    }
}
