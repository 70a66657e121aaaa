namespace ClipSharp.Tests;

/// <summary>Locates the read-only reference data in ../shared/golden beside the repository.</summary>
public static class Golden
{
    public static string Root { get; } = Find();

    public static string Path(params string[] parts) => System.IO.Path.Combine([Root, .. parts]);

    static string Find()
    {
        var env = Environment.GetEnvironmentVariable("CLIPSHARP_GOLDEN");
        if (!string.IsNullOrEmpty(env)) return env;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "ClipSharp.slnx")))
            {
                var golden = System.IO.Path.GetFullPath(System.IO.Path.Combine(dir.FullName, "..", "shared", "golden"));
                if (Directory.Exists(golden)) return golden;
                throw new DirectoryNotFoundException($"Golden reference data not found at {golden}; tests expect ../shared/golden beside the repository (or set CLIPSHARP_GOLDEN).");
            }
        }
        throw new DirectoryNotFoundException("Cannot find the repository root (ClipSharp.slnx) above " + AppContext.BaseDirectory);
    }
}
