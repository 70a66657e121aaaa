using ClipSharp.Server;

namespace ClipSharp.Tests.Server;

/// <summary>The path rules behind every file the server reads: plain relative paths only, and POSIX realpath semantics.</summary>
public class ContainedPathTests
{
    [Theory]
    [InlineData("a.png", true)]
    [InlineData("shapes/shape00.png", true)]
    [InlineData("dir.with.dots/x..y.png", true)]
    [InlineData("", false)]
    [InlineData("/etc/passwd", false)]
    [InlineData("../x.png", false)]
    [InlineData("a/../../x.png", false)]
    [InlineData("a/..", false)]
    [InlineData("./a.png", false)]
    [InlineData("a//b.png", false)]
    [InlineData("a/", false)]
    [InlineData("a\\..\\b.png", false)]
    [InlineData("a\0.png", false)]
    [InlineData("C:/Windows/win.ini", false)]
    public void OnlyPlainRelativePathsPass(string path, bool plain) => Assert.Equal(plain, ContainedPath.Plain(path) is not null);

    [Fact]
    public void RealPathResolvesLinksAsPosixDoesAndDetectsLoops()
    {
        using var tmp = new Evaluation.TestData.TempDir();
        string root = ContainedPath.RealPath(tmp.Path);
        Directory.CreateDirectory(Path.Combine(root, "real", "sub"));
        File.WriteAllText(Path.Combine(root, "real", "x.png"), "x");
        Directory.CreateSymbolicLink(Path.Combine(root, "link"), Path.Combine(root, "real"));
        Directory.CreateSymbolicLink(Path.Combine(root, "deep"), "real/sub"); // relative target
        File.CreateSymbolicLink(Path.Combine(root, "file-link.png"), "real/x.png");

        Assert.Equal(Path.Combine(root, "real", "x.png"), ContainedPath.RealPath(Path.Combine(root, "link", "x.png")));
        Assert.Equal(Path.Combine(root, "real", "x.png"), ContainedPath.RealPath(Path.Combine(root, "file-link.png")));
        // ".." after a link leaves the link's target (real/sub/.. = real), not the folder holding the link.
        Assert.Equal(Path.Combine(root, "real", "x.png"), ContainedPath.RealPath(Path.Combine(root, "deep") + "/../x.png"));
        Assert.True(ContainedPath.IsInside(ContainedPath.RealPath(Path.Combine(root, "link", "x.png")), Path.Combine(root, "real")));
        Assert.False(ContainedPath.IsInside(Path.Combine(root, "realistic", "x.png"), Path.Combine(root, "real")));

        File.CreateSymbolicLink(Path.Combine(root, "loop-a"), Path.Combine(root, "loop-b"));
        File.CreateSymbolicLink(Path.Combine(root, "loop-b"), Path.Combine(root, "loop-a"));
        Assert.Throws<IOException>(() => ContainedPath.RealPath(Path.Combine(root, "loop-a")));
    }
}
