using ClipSharp.Text;

namespace ClipSharp.Tests.Text;

public class ZeroShotDataTests
{
    [Fact]
    public void EmbeddedImageNetListsHaveThePublishedSizes()
    {
        var classes = TokenizerBenchmark.LoadEmbeddedLines("imagenet_classes.txt");
        var templates = TokenizerBenchmark.LoadEmbeddedLines("imagenet_templates.txt");
        Assert.Equal(1000, classes.Count);
        Assert.Equal(80, templates.Count);
        Assert.Equal("tench", classes[0]);
        Assert.Equal("toilet paper", classes[999]);
        Assert.All(templates, t => Assert.Contains("{}", t));
        Assert.Equal(80_000, TokenizerBenchmark.ImageNetPrompts().Count);
    }

    [Fact]
    public void BenchmarkRunsAndReportsBothModes()
    {
        var output = new StringWriter();
        var results = TokenizerBenchmark.Run(SharedTokenizer.Instance, output, runs: 1);
        Assert.Equal(2, results.Count);
        Assert.All(results, r => Assert.True(r.Median > 0));
        Assert.Contains("texts/s", output.ToString());
    }
}
