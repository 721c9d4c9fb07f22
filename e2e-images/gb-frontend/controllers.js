// Guestbook page logic: read the messages, append one, write them back.
var redisApp = angular.module('redis', ['ui.bootstrap']);

redisApp.controller('RedisCtrl', function ($scope, $http) {
  $scope.controller = this;
  $scope.controller.messages = [];
  $http.get('guestbook.php?cmd=get&key=messages').then(function (response) {
    var data = response.data.data;
    $scope.controller.messages = data ? data.split(',') : [];
  });
  $scope.controller.onRedis = function () {
    var messages = $scope.controller.messages.concat([$scope.controller.msg]);
    $http.get('guestbook.php?cmd=set&key=messages&value=' + encodeURIComponent(messages.join(',')))
      .then(function () { $scope.controller.messages = messages; $scope.controller.msg = ''; });
  };
});
