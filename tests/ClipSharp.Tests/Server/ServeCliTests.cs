using System.Text.Json;
using ClipSharp.Search;
using ClipSharp.Server;
using ClipSharp.Tests.Modeling;
using ClipSharp.Tests.Training;

namespace ClipSharp.Tests.Server;

/// <summary><c>clip search --server</c> gives the answers of a local <c>clip search</c>, through a running server.</summary>
[Collection("console")]
public class ServeCliTests
{
    [Fact]
    public async Task SearchWithServerMatchesTheLocalSearchAndReportsServerErrorsInOneLine()
    {
        using var tmp = new Evaluation.TestData.TempDir();
        string folder = tmp["photos"], indexPath = Path.Combine(folder, "photos.index.safetensors");
        Directory.CreateDirectory(folder);
        for (int i = 0; i < 8; i++) File.WriteAllBytes(Path.Combine(folder, $"s{i}.png"), SyntheticShapes.Png(i * 3, 64));
        using (var model = ModelParityTests.LoadGoldenModel("vit_small"))
        using (var index = ImageIndex.Build(model, ImageIndex.ListFiles([folder]), out _, modelPath: ServeFixture.ModelPath))
            index.Save(indexPath);
        await using var server = await ClipServer.StartAsync(new ServeOptions { Indexes = [indexPath], VocabPath = ServeFixture.Vocab, Port = 0 });

        string query = Path.Combine(folder, "s2.png");
        var (code, local, err) = CliRunner.Run("search", "-i", indexPath, "--vocab", ServeFixture.Vocab, "--json", "-k", "3", "a red circle", "--image", query);
        Assert.True(code == 0, err);
        (code, var remote, err) = CliRunner.Run("search", "--server", server.Address.ToString(), "--json", "-k", "3", "a red circle", "--image", query);
        Assert.True(code == 0, err);
        var l = JsonDocument.Parse(local).RootElement;
        var r = JsonDocument.Parse(remote).RootElement;
        Assert.Equal(2, r.GetArrayLength());
        for (int q = 0; q < 2; q++)
        {
            Assert.Equal(l[q].GetProperty("query").GetString(), r[q].GetProperty("query").GetString());
            var lh = l[q].GetProperty("hits").EnumerateArray().ToList();
            var rh = r[q].GetProperty("hits").EnumerateArray().ToList();
            Assert.Equal(lh.Select(h => Path.GetFileName(h.GetProperty("path").GetString())), rh.Select(h => h.GetProperty("path").GetString()));
            for (int i = 0; i < lh.Count; i++) Assert.Equal(lh[i].GetProperty("score").GetSingle(), rh[i].GetProperty("score").GetSingle(), 5);
        }

        (code, _, err) = CliRunner.Run("search", "--server", server.Address.ToString(), "-i", "nope", "a cat");
        Assert.Equal(1, code);
        Assert.Contains("no index named 'nope'", err);
        Assert.Single(err.Trim().Split('\n'));
    }
}
