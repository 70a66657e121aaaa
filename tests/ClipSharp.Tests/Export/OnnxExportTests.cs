using System.Diagnostics;
using ClipSharp.Export;
using ClipSharp.Modeling;
using ClipSharp.Tests.Modeling;

namespace ClipSharp.Tests.Export;

/// <summary>
/// The exported graphs of both golden models pass the ONNX checker of Debian's python3-onnx (full check, with shape
/// inference), and the files beside them read back. test.sh installs python3-onnx; without it the test fails.
/// </summary>
public class OnnxExportTests
{
    [Theory, InlineData("vit_small"), InlineData("rn_small")]
    public void ExportedGraphsPassTheOnnxChecker(string name)
    {
        using var model = ModelParityTests.LoadGoldenModel(name);
        var dir = Directory.CreateTempSubdirectory("clipsharp-onnx-");
        try
        {
            var files = ClipOnnxExporter.Export(model, dir.FullName);
            foreach (var f in new[] { OnnxExportLayout.VisionModelFile, OnnxExportLayout.TextModelFile, OnnxExportLayout.ConfigFile, OnnxExportLayout.PreprocessorFile, OnnxExportLayout.ManifestFile })
                Assert.Contains(Path.Combine(dir.FullName, f), files);
            Assert.Equal(model.Config, ClipConfig.FromJsonFile(Path.Combine(dir.FullName, OnnxExportLayout.ConfigFile)));
            var pre = OnnxExportLayout.ReadPreprocessor(File.ReadAllText(Path.Combine(dir.FullName, OnnxExportLayout.PreprocessorFile)), "pre");
            Assert.Equal(model.Config.ImageResolution, pre.Size);
            var manifest = OnnxExportLayout.FromJson(File.ReadAllText(Path.Combine(dir.FullName, OnnxExportLayout.ManifestFile)), "manifest");
            Assert.True(manifest.Vocabulary.IsBuiltIn);

            Assert.True(File.Exists("/usr/bin/python3") && File.Exists("/usr/lib/python3/dist-packages/onnx/__init__.py"),
                "Debian's python3-onnx is not installed (./test.sh installs it)");
            var psi = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
            psi.ArgumentList.Add("-c");
            psi.ArgumentList.Add("import onnx, sys\nfor f in sys.argv[1:]:\n    onnx.checker.check_model(onnx.load(f), full_check=True)\nprint('ok')");
            psi.ArgumentList.Add(Path.Combine(dir.FullName, OnnxExportLayout.VisionModelFile));
            psi.ArgumentList.Add(Path.Combine(dir.FullName, OnnxExportLayout.TextModelFile));
            using var p = Process.Start(psi)!;
            var err = p.StandardError.ReadToEndAsync();
            string output = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            Assert.True(p.ExitCode == 0, $"onnx.checker refused the export: {err.Result}");
            Assert.Equal("ok", output.Trim());
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
